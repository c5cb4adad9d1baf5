"""Finance (issue 12): tax ids and text limits of invoices, invoice arithmetic, the invoice PDF, providers."""
