"""Read-only checks: alarms, the template (SAM, cfn-lint), the smoke checks, GitHub's staging evidence."""
