"""``python -m keyrelease.graphql.export``: print the schema served at /graphql."""

from keyrelease.graphql.schema import build_schema

if __name__ == "__main__":
    print(build_schema().as_str())
