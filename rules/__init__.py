"""Static rules, one module per problem, grouped by family (discovered by `all_rules()`)."""
