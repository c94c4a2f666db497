"""Everything that talks to the identity provider: discovery, JWKS, token client, verification."""
