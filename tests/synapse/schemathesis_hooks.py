"""Schemathesis hooks of test_admin_api.py (loaded through SCHEMATHESIS_HOOKS).

Every request gets a fresh admin token from the client_credentials grant: the fuzzer
may well finish the OAuth 2.0 session of the token it holds (the API lists it, and
links lead from the list to `finish`), which is the API working, not failing."""

from __future__ import annotations

import os

import requests
import schemathesis

TOKEN_URL = os.environ["MAS_ADMIN_TOKEN_URL"]
CLIENT = (os.environ["MAS_ADMIN_CLIENT_ID"], os.environ["MAS_ADMIN_CLIENT_SECRET"])


@schemathesis.auth(refresh_interval=None)
class AdminToken:
    def get(self, case, context):
        response = requests.post(
            TOKEN_URL,
            auth=CLIENT,
            data={"grant_type": "client_credentials", "scope": "urn:mas:admin"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

