"""Settings of the botrix_site project, read from the environment.

| variable | default |
| --- | --- |
| ``DJANGO_SECRET_KEY`` | required unless ``DJANGO_DEBUG`` is on |
| ``DJANGO_DEBUG`` | off |
| ``DJANGO_DEV_DATA_DIR`` | ``<project>/.devdata``: where ``DEBUG`` keeps its generated key |
| ``DJANGO_ALLOWED_HOSTS`` | ``localhost,127.0.0.1,[::1]`` |
| ``REDIS_URL`` | ``redis://127.0.0.1:6379/0`` |
| ``DATABASE_URL`` | ``sqlite:///<project>/db.sqlite3`` |
| ``DJANGO_SECURE_PROXY`` | off; on behind a TLS-terminating proxy |
| ``JOBUPDATES_*`` | see ``jobupdates/conf/`` (read there, from settings or the environment) |
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jobupdates.redis_url import layer_host

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false, 1/0), got {raw!r}")


DEV_SECRET_KEY_FILE = "secret-key"
"""The file, in ``DJANGO_DEV_DATA_DIR``, that keeps the key ``DEBUG`` generated."""


def dev_secret_key(data_dir: Path) -> str:
    """Return the development key kept in ``data_dir``, generating it on first use.

    A key written in the source would let anyone forge sessions and
    WebSocket tokens offline, so each checkout gets its own random key, kept
    in a file readable by its owner only (mode 0600). The file is created
    whole or not at all (written aside, then linked into place), so
    processes starting together (``make run``) all read the same key.
    """
    path = data_dir / DEV_SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{DEV_SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as draft_file:
            draft_file.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path}: expected a development secret key, got an empty file")
    return key


DEBUG = _env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY: expected a secret key in the environment, got none "
            "(only DJANGO_DEBUG=1 may run without one)."
        )
    SECRET_KEY = dev_secret_key(
        Path(os.environ.get("DJANGO_DEV_DATA_DIR") or BASE_DIR / ".devdata")
    )

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Behind a TLS-terminating proxy (nginx with wss), set DJANGO_SECURE_PROXY=1: requests
# carrying X-Forwarded-Proto: https count as secure, and cookies are sent over TLS only.
if _env_bool("DJANGO_SECURE_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "jobupdates",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "botrix_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "botrix_site.asgi.application"

# Persistent connections: each WebSocket handshake looks up its session in a worker
# thread, and opening and closing a connection there took ~8% of a connect storm's
# CPU (docs/performance.md). Health checks replace a connection the database dropped.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}

# channels_redis's pub/sub layer (one subscription per process and group, which
# re-subscribes by itself after Redis restarts) with jobupdates' fast path for
# job updates. socket_timeout is explicit: redis-py 8 defaults to 5 s. REDIS_URL
# may be a redis+sentinel:// URL (jobupdates.redis_url): layer_host turns it into
# channels_redis's sentinel form.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "jobupdates.delivery.layers.JobUpdatesChannelLayer",
        "CONFIG": {
            "hosts": [
                layer_host(
                    REDIS_URL,
                    socket_timeout=30,
                    socket_connect_timeout=5,
                    socket_keepalive=True,
                    health_check_interval=10,
                )
            ],
        },
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "jobupdates": {"level": os.environ.get("JOBUPDATES_LOG_LEVEL", "INFO")},
        "daphne": {"level": "INFO"},
    },
}
