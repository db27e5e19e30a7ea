"""The resource routes of the API (registered on ``api.api``)."""
