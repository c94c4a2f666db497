"""cognito-gateway: an authentication reverse proxy for Amazon Cognito user pools."""

from __future__ import annotations

__version__ = "0.1.0"
