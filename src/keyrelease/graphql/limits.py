"""The default limits of the GraphQL endpoint. The settings (``KEYRELEASE_GRAPHQL_*``,
keyrelease.config) take their defaults from here, and ``build_schema`` uses them when it is
built without settings (the exported schema, tests)."""

INTROSPECTION = True
#: The deepest selection allowed.
MAX_DEPTH = 10
#: The largest document allowed, in tokens.
MAX_TOKENS = 2000
#: The most field values one answer may hold (keyrelease.graphql.cost): a page of 100 keys
#: with every field, their events and deliveries (10,905) fits; the console needs 1,405 at most.
MAX_COST = 13_000
#: The most aliases in one document.
MAX_ALIASES = 20
