"""Finance: invoice profiles, invoices (数电票), their PDFs, payments (issue 12)."""
