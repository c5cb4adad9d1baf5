"""Security: roles and the permission table, masking, encryption, passwords, audit."""
