"""COVID-QU-Ex from Kaggle: the dataset's handle, whether a download can work, the download.

One home for the Kaggle facts: ``labkit.data.locate`` finds earlier downloads in the
kagglehub cache by ``KAGGLE_HANDLE``, ``labkit.course.setup`` downloads on Colab when the
student has Kaggle credentials, and ``labkit data download`` downloads on request.
kagglehub (preinstalled on Colab; ``pip install kagglehub`` elsewhere) is imported only
when a download starts.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
from pathlib import Path

KAGGLE_HANDLE = "anasmohammedtahir/covidqu"
KAGGLE_URL = f"https://www.kaggle.com/datasets/{KAGGLE_HANDLE}"
KAGGLE_HOST = ("www.kaggle.com", 443)


class DownloadError(RuntimeError):
    """The download could not run or failed; the message says why and what to do instead."""


# kagglehub's rules (1.0): an API token first (KAGGLE_API_TOKEN, in the environment or as a
# Colab secret, or ~/.kaggle/access_token), then the legacy username + key (environment,
# kaggle.json, Colab secrets).
TOKEN = "KAGGLE_API_TOKEN"
USERNAME, KEY = "KAGGLE_USERNAME", "KAGGLE_KEY"


def _colab_secret(name: str) -> str:
    """The Colab secret ``name``, or ``""`` (not defined, access not granted, not Colab)."""
    try:
        from google.colab import userdata  # only on Colab

        return str(userdata.get(name) or "").strip()
    except Exception:  # each secret on its own: a missing one must not hide the others
        return ""


def kaggle_credentials() -> str | None:
    """Where kagglehub will find Kaggle credentials, or ``None`` when there are none.

    Follows kagglehub's order: ``KAGGLE_API_TOKEN`` in the environment,
    ``~/.kaggle/access_token``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` in the environment,
    ``kaggle.json`` in ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``, and on Colab the notebook's
    secrets: ``KAGGLE_API_TOKEN``, or ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` (which
    ``use_colab_secrets`` hands to kagglehub: 1.0.2 reads them only beside a token secret).

    Returns:
        A short description such as ``"the KAGGLE_API_TOKEN Colab secret"``.
    """
    if os.environ.get(TOKEN, "").strip():
        return f"the {TOKEN} environment variable"
    for name in ("access_token", "access_token.txt"):
        token_file = Path("~/.kaggle").expanduser() / name
        if token_file.is_file() and token_file.read_text(encoding="utf-8").strip():
            return str(token_file)
    if os.environ.get(USERNAME) and os.environ.get(KEY):
        return f"the {USERNAME} and {KEY} environment variables"
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()
    config = folder / "kaggle.json"
    if config.is_file():
        try:
            keys = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            keys = {}
        if isinstance(keys, dict) and keys.get("username") and keys.get("key"):
            return str(config)
    if "COLAB_RELEASE_TAG" in os.environ:
        if _colab_secret(TOKEN):
            return f"the {TOKEN} Colab secret"
        if _colab_secret(USERNAME) and _colab_secret(KEY):
            return f"the {USERNAME} and {KEY} Colab secrets"
    return None


def use_colab_secrets() -> None:
    """On Colab, put the notebook's Kaggle secrets into this process's environment, where
    every kagglehub version looks (kagglehub 1.0.2 stops at a missing ``KAGGLE_API_TOKEN``
    secret before it reads ``KAGGLE_USERNAME`` / ``KAGGLE_KEY``). Nothing is overwritten."""
    if "COLAB_RELEASE_TAG" not in os.environ or kaggle_credentials() is None:
        return
    if os.environ.get(TOKEN) or (os.environ.get(USERNAME) and os.environ.get(KEY)):
        return  # the environment already has credentials: kagglehub uses those
    if token := _colab_secret(TOKEN):
        os.environ[TOKEN] = token
    elif (user := _colab_secret(USERNAME)) and (key := _colab_secret(KEY)):
        os.environ[USERNAME], os.environ[KEY] = user, key


def kaggle_reachable(
    host: str = KAGGLE_HOST[0], port: int = KAGGLE_HOST[1], timeout: float = 3.0
) -> bool:
    """Whether a verified TLS connection to ``host:port`` opens within ``timeout`` seconds.

    A TLS handshake with certificate check, not just a TCP connect: some sandboxes and proxies
    accept any TCP connection. Runs in a thread so a slow DNS lookup cannot make it wait
    longer than ``timeout``.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            context = ssl.create_default_context()
            with socket.create_connection((host, port), timeout=timeout) as raw:
                with context.wrap_socket(raw, server_hostname=host):
                    result.append(True)
        except (OSError, ssl.SSLError):
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def manual_instructions(dest: Path | None = None) -> str:
    """How to download and point labkit at the dataset by hand (several lines)."""
    where = dest or Path.home() / "data" / "covidqu"
    return (
        "Download it by hand instead:\n"
        f"  1. open {KAGGLE_URL} (sign in) and click Download (about 1 GB zip)\n"
        f"  2. unzip it into {where}, so that '{where}/Infection Segmentation Data/"
        "Infection Segmentation Data/Train' exists\n"
        f"  3. export LABKIT_DATA={where}   (or pass data='{where}' / --data {where})\n"
        f"  4. labkit data check {where}\n"
        "Until then labkit uses the synthetic phantom dataset (--data phantom)."
    )


def download_covidqu(dest: str | Path | None = None, check_network: bool = True) -> Path:
    """Download COVID-QU-Ex with kagglehub and return the folder it landed in.

    Args:
        dest: folder to download into; ``None`` = the kagglehub cache, where
            ``labkit.data.locate`` finds it again later.
        check_network: first check that Kaggle answers (fails in about 3 s when offline
            instead of waiting for kagglehub's retries).

    Returns:
        The downloaded folder (pass it to ``resolve_data`` for the dataset root).

    Raises:
        DownloadError: offline, kagglehub missing, or the download failed (no credentials,
            disk full...); the message ends with the manual instructions.
    """
    dest = None if dest is None else Path(dest).expanduser()
    if check_network and not kaggle_reachable():
        raise DownloadError(
            f"cannot reach {KAGGLE_HOST[0]} (offline?).\n{manual_instructions(dest)}"
        )
    try:
        import kagglehub
    except ImportError as err:
        raise DownloadError(
            f"kagglehub is not installed (pip install kagglehub).\n{manual_instructions(dest)}"
        ) from err
    use_colab_secrets()
    try:
        if dest is not None:
            dest.mkdir(parents=True, exist_ok=True)
            return Path(kagglehub.dataset_download(KAGGLE_HANDLE, output_dir=str(dest)))
        return Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:  # network, credentials, disk: all end in the same advice
        reason = f"{type(err).__name__}: {str(err)[:200].rstrip('.')}"
        raise DownloadError(
            f"kagglehub could not download {KAGGLE_HANDLE} ({reason}). It needs Kaggle "
            "credentials (KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, in the "
            "environment or, on Colab, as the notebook's secrets; or ~/.kaggle/kaggle.json)."
            f"\n{manual_instructions(dest)}"
        ) from err
