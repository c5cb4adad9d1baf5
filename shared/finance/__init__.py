"""Finance (issue 12): invoices, their figures and rules, the invoicing provider."""
