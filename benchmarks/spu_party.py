"""One party of SecretFlow spu's RR22 PSI (run with the Python of a separate virtualenv holding spu 0.9.5).

Not part of riskshare and not among its dependencies; see benchmarks/README.md.
    python spu_party.py --rank 0 --ports 9101,9102 --input receiver.csv --output out.csv --key client_id
"""

import argparse
import json
import time

import spu.libspu.link as link
import spu.psi as psi

ap = argparse.ArgumentParser()
ap.add_argument("--rank", type=int, required=True)
ap.add_argument("--ports", required=True)
ap.add_argument("--input", required=True)
ap.add_argument("--output", required=True)
ap.add_argument("--key", default="client_id")
ap.add_argument("--protocol", default="PROTOCOL_RR22")
args = ap.parse_args()

desc = link.Desc()
desc.recv_timeout_ms = 3600 * 1000
for rank, port in enumerate(args.ports.split(",")):
    desc.add_party(f"party{rank}", f"127.0.0.1:{port}")
lctx = link.create_brpc(desc, args.rank)
config = psi.PsiExecuteConfig(
    protocol_conf=psi.PsiProtocolConfig(protocol=psi.parse_protocol(args.protocol), receiver_rank=0,
                                        broadcast_result=False),
    input_params=psi.InputParams(path=args.input, selected_keys=[args.key], keys_unique=True),
    output_params=psi.OutputParams(path=args.output, disable_alignment=True),
)
started = time.perf_counter()
report = psi.psi_execute(config, lctx)
print(json.dumps({"rank": args.rank, "seconds": time.perf_counter() - started,
                  "original": report.original_count, "intersection": report.intersection_count}))
lctx.stop_link()
