"""RQ jobs: thin functions that take ids, load fresh state, call a service and commit."""
