"""Tables: ``python -m infocam_exp.tables ID`` aggregates the runs of ``configs/table/ID.yaml``."""
