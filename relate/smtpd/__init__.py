"""The SMTP daemon: submission (587, 465) and MX (25) for Relate Mail."""
