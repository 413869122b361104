"""The HTML of the sandbox's OAuth2 consent page and its refusal page.

Self-contained (inline CSS, no script, no external asset) so it works offline and under
a browser test; every value that came from a request or the world is escaped.
"""

from __future__ import annotations

from html import escape

from .models import User
from .oauth import AuthorizeRequest

_STYLE = """
body{font-family:system-ui,sans-serif;background:#313338;color:#dbdee1;margin:0;
display:flex;justify-content:center;padding:2rem 1rem}
main{background:#2b2d31;border-radius:8px;padding:1.5rem;max-width:28rem;width:100%}
h1{font-size:1.25rem;margin:0 0 1rem}ul{padding-left:1.25rem}
fieldset{border:1px solid #4e5058;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
label{display:block;padding:.35rem 0}.actions{display:flex;gap:.75rem;justify-content:flex-end}
button{font-size:1rem;padding:.5rem 1.25rem;border-radius:4px;border:0;cursor:pointer}
button[value=authorize]{background:#5865f2;color:#fff}button[value=cancel]{background:#4e5058;
color:#fff}.error{color:#fa777c}
"""

SCOPE_WORDS = {
    "identify": "Access your username, avatar, and banner",
    "email": "Access your email address",
    "guilds": "Know what servers you're in",
    "guilds.members.read": "Read your member info (nickname, avatar, roles) in servers",
    "guilds.join": "Join servers for you",
    "connections": "Access your third-party connections",
}


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _hidden(name: str, value: str | None) -> str:
    if value is None:
        return ""
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def consent_page(
    request: AuthorizeRequest, *, app_name: str, users: list[User], action: str
) -> str:
    """Pick a sandbox user and Authorize or Cancel; the form POSTs to ``action``."""
    scopes = "".join(
        f"<li>{escape(SCOPE_WORDS.get(s, s))} (<code>{escape(s)}</code>)</li>"
        for s in request.scopes
    )
    choices = "".join(
        f'<label><input type="radio" name="user_id" value="{u.id}"'
        f'{" checked" if i == 0 else ""}> {escape(u.global_name or u.username)} '
        f"(@{escape(u.username)}, {u.id})</label>"
        for i, u in enumerate(users)
    )
    if not users:
        choices = '<p class="error">The sandbox has no users yet: add a member first.</p>'
    hidden = "".join(
        _hidden(name, value)
        for name, value in (
            ("response_type", "code"),
            ("client_id", request.client_id),
            ("redirect_uri", request.redirect_uri),
            ("scope", " ".join(request.scopes)),
            ("state", request.state),
            ("code_challenge", request.code_challenge),
            ("code_challenge_method", "S256" if request.code_challenge else None),
        )
    )
    body = (
        f"<h1>{escape(app_name)} wants to access your account</h1>"
        f"<p>This will allow {escape(app_name)} to:</p><ul>{scopes}</ul>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        f"<fieldset><legend>Log in as (sandbox users)</legend>{choices}</fieldset>"
        f"<p>You will be sent to <code>{escape(request.redirect_uri)}</code>.</p>"
        '<div class="actions"><button type="submit" name="action" value="cancel">Cancel</button>'
        '<button type="submit" name="action" value="authorize">Authorize</button></div>'
        "</form>"
    )
    return _page(f"Authorize {app_name}", body)


def refusal_page(reason: str) -> str:
    body = (
        "<h1>Invalid OAuth2 request</h1>"
        f'<p class="error">{escape(reason)}</p>'
        "<p>Nothing was sent to the application.</p>"
    )
    return _page("Invalid OAuth2 request", body)
