"""in-toto Statements v1 and the predicate types dssesign knows (schemas, SPDX checks)."""
