"""`cognito-gateway demo`: the dev IdP, a header-echo upstream and the gateway on 127.0.0.1."""
