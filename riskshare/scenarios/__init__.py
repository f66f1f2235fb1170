"""The four scenarios end to end: synthetic data, job templates, the demo and its report."""
