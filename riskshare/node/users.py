"""Users, API tokens and password logins.

Tokens are 256-bit random strings shown once; the database keeps only their
SHA-256 (a token is as strong as a key, so a slow hash adds nothing and would
cost every API call). Passwords, which people choose, are hashed with argon2id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InputError
from .authz import ROLES
from .context import NodeContext
from .errors import Conflict, NotFound, Unauthenticated
from .home import check_name
from .storage import utcnow
from .storage.models import Token, User

TOKEN_PREFIX = "rs_"
SESSION_HOURS = 12
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of this node."""

    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


class AuthCache:
    """Recently checked tokens, for ``ttl`` seconds (status polling must not cost a lookup each time).

    The node clears it whenever users or tokens change through its API; a change
    made by a local command in another process takes effect within ``ttl``.
    """

    def __init__(self, ttl: float = 5.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str | None) -> Principal | None:
        if not token:
            return None
        with self._lock:
            entry = self._entries.get(hash_token(token))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, token: str | None, principal: Principal) -> None:
        if not token:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[hash_token(token)] = (principal, time.monotonic() + self.ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"unknown role '{role}'", hint=f"choose one of: {', '.join(ROLES)}")
    return role


def user_dict(user: User) -> dict:
    return {"name": user.name, "role": user.role, "disabled": user.disabled, "has_password": bool(user.password_hash),
            "created_at": user.created_at.isoformat(), "created_by": user.created_by}


def add_user(ctx: NodeContext, session: Session, actor: str, name: str, role: str,
             password: str | None = None) -> tuple[User, str]:
    """Create a user; return it and its first API token (shown once, stored hashed)."""
    check_name(name, "user name")
    check_role(role)
    if session.execute(select(User).where(User.name == name)).scalar_one_or_none():
        raise Conflict(f"user '{name}' already exists", hint="pick another name, or issue a new token with `riskshare user token`")
    if password is not None and len(password) < 8:
        raise InputError("the password is shorter than 8 characters")
    user = User(name=name, role=role, password_hash=_hasher.hash(password) if password else None, disabled=False,
                created_at=utcnow(), created_by=actor)
    session.add(user)
    session.flush()
    token = _issue(session, user, "api")
    ctx.audit.append(session, actor, "user.add", f"user:{name}", {"role": role, "password": bool(password)})
    return user, token


def _issue(session: Session, user: User, kind: str, hours: int | None = None) -> str:
    token = new_token()
    expires = utcnow() + dt.timedelta(hours=hours) if hours else None
    session.add(Token(user_id=user.id, token_hash=hash_token(token), kind=kind, created_at=utcnow(),
                      expires_at=expires, revoked_at=None))
    return token


def get_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user named '{name}'")
    return user


def new_api_token(ctx: NodeContext, session: Session, actor: str, name: str, *, revoke_old: bool = True) -> str:
    """Issue a fresh API token (revoking the user's earlier API tokens by default)."""
    user = get_user(session, name)
    if revoke_old:
        for token in session.execute(select(Token).where(Token.user_id == user.id, Token.kind == "api",
                                                         Token.revoked_at.is_(None))).scalars():
            token.revoked_at = utcnow()
    token = _issue(session, user, "api")
    ctx.audit.append(session, actor, "user.token", f"user:{name}", {"revoked_old": revoke_old})
    return token


def disable_user(ctx: NodeContext, session: Session, actor: str, name: str) -> None:
    user = get_user(session, name)
    user.disabled = True
    for token in session.execute(select(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))).scalars():
        token.revoked_at = utcnow()
    ctx.audit.append(session, actor, "user.disable", f"user:{name}", {})


def set_password(ctx: NodeContext, session: Session, actor: str, name: str, password: str) -> None:
    if len(password) < 8:
        raise InputError("the password is shorter than 8 characters")
    user = get_user(session, name)
    user.password_hash = _hasher.hash(password)
    ctx.audit.append(session, actor, "user.password", f"user:{name}", {})


def authenticate(session: Session, token: str | None) -> Principal:
    """The user a bearer token belongs to, or :class:`Unauthenticated`."""
    if not token:
        raise Unauthenticated("no API token given", hint="pass --token or set RISKSHARE_TOKEN")
    row = session.execute(
        select(Token, User).join(User, User.id == Token.user_id).where(Token.token_hash == hash_token(token))
    ).first()
    if row is None:
        raise Unauthenticated("the API token is not valid", hint="ask an admin for a new one")
    tok, user = row
    if tok.revoked_at is not None or user.disabled:
        raise Unauthenticated("the API token was revoked", hint="ask an admin for a new one")
    if tok.expires_at is not None and tok.expires_at < utcnow():
        raise Unauthenticated("the session has expired", hint="log in again")
    return Principal(user.name, user.role)


def login(ctx: NodeContext, name: str, password: str, source: str = "") -> tuple[Principal, str]:
    """Check a password; return a session token valid for SESSION_HOURS. Every attempt is audited."""
    with ctx.db.session() as session:
        user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
        ok = False
        if user is not None and user.password_hash and not user.disabled:
            try:
                ok = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok:
            ctx.audit.append(session, f"user:{name}", "auth.login_failed", f"user:{name}", {"source": source})
        else:
            assert user is not None
            token = _issue(session, user, "session", SESSION_HOURS)
            ctx.audit.append(session, f"user:{name}", "auth.login", f"user:{name}", {"source": source})
    if not ok:
        raise Unauthenticated("wrong user name or password")
    return Principal(user.name, user.role), token


def list_users(session: Session) -> list[dict]:
    return [user_dict(u) for u in session.execute(select(User).order_by(User.name)).scalars()]
