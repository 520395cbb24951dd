"""headless-bi: a GraphQL-first headless BI service built around a semantic layer.

The flow is one way: models (`semantic`) → compiled plan → SQL (sqlglot) → Arrow (`warehouse`) →
response (`service`, `graphql`, `cli`).
"""
