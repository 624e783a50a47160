"""Read-only checks: alarms, the template (SAM, cfn-lint), the build Lambda runs, the smoke checks,
GitHub's staging evidence."""
