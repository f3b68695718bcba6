"""ctl — a telephony control layer over Asterisk (AMI) and FreeSWITCH (ESL)."""

__version__ = "0.1.0"
