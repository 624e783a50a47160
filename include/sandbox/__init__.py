"""The local sandbox: every external system of a release on one machine."""
