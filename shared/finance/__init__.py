"""Finance rules that need no database: tax ids, text limits of invoices, invoice arithmetic."""
