"""Before serving: the files the settings name are readable and what they claim to be.

Each problem is one line that names the setting and the file; `serve` logs them and exits 2
instead of failing later with a traceback (or, for a token directory, serving without tokens).
"""

from __future__ import annotations

import os
import ssl

from sidecar.settings import Settings


def _tls_problems(settings: Settings) -> list[str]:
    if not settings.tls_cert:
        return []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as err:
        return [f"--tls-cert/--tls-key: {err.filename or settings.tls_cert}: no such file"]
    except PermissionError as err:
        return [f"--tls-cert/--tls-key: {err.filename or settings.tls_cert}: not readable (permission denied)"]
    except (ssl.SSLError, OSError) as err:
        return [
            f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: not a PEM certificate chain and its "
            f"matching private key ({getattr(err, 'reason', None) or err})"
        ]
    if settings.tls_client_ca:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca)
        except FileNotFoundError:
            return [f"--tls-client-ca: {settings.tls_client_ca}: no such file"]
        except PermissionError:
            return [f"--tls-client-ca: {settings.tls_client_ca}: not readable (permission denied)"]
        except (ssl.SSLError, OSError, ValueError) as err:
            return [
                f"--tls-client-ca {settings.tls_client_ca}: not a PEM CA bundle ({getattr(err, 'reason', None) or err})"
            ]
    return []


def _token_problems(settings: Settings) -> list[str]:
    if not settings.auth_tokens_dir:
        return []
    try:
        with os.scandir(settings.auth_tokens_dir):
            pass
    except FileNotFoundError:
        return [f"--auth-tokens-dir: {settings.auth_tokens_dir}: no such directory"]
    except NotADirectoryError:
        return [f"--auth-tokens-dir: {settings.auth_tokens_dir}: not a directory"]
    except OSError as err:
        return [f"--auth-tokens-dir: {settings.auth_tokens_dir}: cannot read ({err.strerror or err})"]
    return []


def file_problems(settings: Settings) -> list[str]:
    """One line per unusable file or directory the settings name."""
    return _tls_problems(settings) + _token_problems(settings)
