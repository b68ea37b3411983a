"""A thin, fault-tolerant layer over simple-salesforce: auth, retries, paging, errors.

Why: transient faults (5xx, timeouts, dropped connections) deserve bounded retries with
exponential back-off and jitter; an exhausted API limit or a bad session deserves one
clear line and a stop. Credentials come from the environment (or oppkit.toml for what
is not secret) and are never logged or stored.

Example::

    client = SalesforceClient.connect(SalesforceSettings.from_env())
    for page in client.query_pages("SELECT Id FROM Account"):
        ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..config import env_setting
from ..errors import ConfigError, SourceError
from ..redact import one_line, remember
from .page_ahead import one_ahead

log = logging.getLogger(__name__)
API_VERSION = "59.0"
TRANSIENT = (SalesforceGeneralError, requests.ConnectionError, requests.Timeout)
RETRIED_STATUS = (408, 429)  # and every 5xx: the other 4xx answers would not change
RETRY_ATTEMPTS = int(env_setting("SF_RETRIES", "5"))
RETRY_MAX_WAIT = float(env_setting("SF_RETRY_MAX_WAIT", "30"))


def _transient(exc: BaseException) -> bool:
    """A fault worth retrying: no answer, a 5xx, a timeout or too many requests."""
    if isinstance(exc, SalesforceGeneralError):
        status = getattr(exc, "status", None) or 500
        return status >= 500 or status in RETRIED_STATUS
    return isinstance(exc, TRANSIENT)


@dataclass(frozen=True)
class SalesforceSettings:
    """How to reach the org. Secrets only ever come from the environment."""

    instance_url: str | None = None
    session_id: str | None = None
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    domain: str | None = None  # "login", "test" or a My Domain
    consumer_key: str | None = None
    consumer_secret: str | None = None
    private_key_file: str | None = None
    ca_bundle: str | None = None  # a CA file to trust (tests, proxies); default: system
    timeout: float = 60.0

    @classmethod
    def from_env(
        cls, config: Mapping[str, Any] | None = None, **overrides: Any
    ) -> SalesforceSettings:
        """OPPKIT_SF_* variables; non-secret defaults from oppkit.toml's [salesforce]."""
        config = dict(config or {})

        def pick(name: str, secret: bool = False) -> str | None:
            if overrides.get(name):
                return overrides[name]
            value = env_setting(f"SF_{name.upper()}")
            return value if value or secret else config.get(name)

        return cls(
            instance_url=pick("instance_url"),
            session_id=pick("session_id", secret=True),
            username=pick("username"),
            password=pick("password", secret=True),
            security_token=pick("security_token", secret=True),
            domain=pick("domain"),
            consumer_key=pick("consumer_key"),
            consumer_secret=pick("consumer_secret", secret=True),
            private_key_file=pick("private_key_file"),
            ca_bundle=pick("ca_bundle"),
        )

    def describe(self) -> str:
        """Which org, for messages and lock names; never includes a secret."""
        return self.instance_url or f"{self.username or 'client'}@{self.domain or 'login'}"


class _PinnedSession(requests.Session):
    """A session whose CA file wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the env."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # noqa: ANN001, ANN201
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["verify"] = self.verify
        return settings


def _explain(exc: SalesforceError) -> str:
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', '')}: {first.get('message', '')}".strip(": ")
    if isinstance(content, (str, bytes)) and content.strip():  # not Salesforce's JSON: a page
        text = content.decode(errors="replace") if isinstance(content, bytes) else content
        return one_line(text, 200)
    return str(exc).splitlines()[0]


def _is_limit(exc: SalesforceRefusedRequest) -> bool:
    return "REQUEST_LIMIT_EXCEEDED" in str(getattr(exc, "content", "")) + str(exc)


class SalesforceRequestFailed(SourceError):
    """Salesforce answered a request with an error that is neither transient nor about the
    session or the API limit (e.g. 400 INVALID_QUERY_LOCATOR); ``upstream`` is
    simple-salesforce's exception."""

    def __init__(self, upstream: SalesforceError) -> None:
        status = getattr(upstream, "status", None)
        super().__init__(f"Salesforce answered {status} ({_explain(upstream)})")
        self.upstream = upstream


class _Salesforce(Salesforce):
    """simple-salesforce, decoding its REST answers with orjson through the client's own
    parse hook: a 2,000-record query page decodes several times faster than with json."""

    def parse_result_to_json(self, result: requests.Response) -> Any:
        return orjson.loads(result.content)


class SalesforceClient:
    """simple-salesforce with retries and errors translated into oppkit's."""

    def __init__(self, sf: Salesforce) -> None:
        self.sf = sf
        self._call = retry(
            retry=retry_if_exception(_transient),
            wait=wait_random_exponential(multiplier=0.5, max=RETRY_MAX_WAIT),
            stop=stop_after_attempt(RETRY_ATTEMPTS),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )(self._guarded)

    @classmethod
    def connect(cls, settings: SalesforceSettings) -> SalesforceClient:
        """Log in with whichever credentials the settings hold (session, JWT, password...)."""
        remember(settings.session_id, settings.password, settings.security_token,
                 settings.consumer_secret)  # fmt: skip
        session = _PinnedSession() if settings.ca_bundle else requests.Session()
        if settings.ca_bundle:
            session.verify = settings.ca_bundle
        common: dict[str, Any] = {"session": session, "version": API_VERSION}
        if settings.domain:
            common["domain"] = settings.domain
        try:
            if settings.session_id:
                if not settings.instance_url:
                    raise ConfigError(
                        "a Salesforce session id needs --instance-url (OPPKIT_SF_INSTANCE_URL)"
                    )
                sf = _Salesforce(instance_url=settings.instance_url, session_id=settings.session_id,
                                **{k: v for k, v in common.items() if k != "domain"})  # fmt: skip
            elif settings.consumer_key and settings.private_key_file:
                sf = _Salesforce(username=settings.username, consumer_key=settings.consumer_key,
                                privatekey_file=settings.private_key_file, **common)  # fmt: skip
            elif settings.consumer_key and settings.consumer_secret and not settings.username:
                sf = _Salesforce(consumer_key=settings.consumer_key,
                                consumer_secret=settings.consumer_secret, **common)  # fmt: skip
            elif settings.username and settings.password:
                sf = _Salesforce(username=settings.username, password=settings.password,
                                security_token=settings.security_token or "", **common)  # fmt: skip
            else:
                raise ConfigError(
                    "no Salesforce credentials: set OPPKIT_SF_INSTANCE_URL and OPPKIT_SF_SESSION_ID, "
                    "or OPPKIT_SF_USERNAME, OPPKIT_SF_PASSWORD and OPPKIT_SF_SECURITY_TOKEN, "
                    "or a connected app (OPPKIT_SF_CONSUMER_KEY with a key file or secret)"
                )
        except SalesforceAuthenticationFailed as exc:
            raise SourceError(f"Salesforce login failed: {exc.code}: {exc.message}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SourceError(
                f"cannot reach Salesforce at {settings.describe()}: {type(exc).__name__}"
            ) from exc
        remember(sf.session_id)  # the one a login issued
        return cls(sf)

    def _guarded(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SalesforceRefusedRequest as exc:
            if _is_limit(exc):
                raise SourceError(
                    f"Salesforce API request limit exceeded ({_explain(exc)}); "
                    "everything up to now is kept, the next run resumes"
                ) from exc
            raise SourceError(f"Salesforce refused the request ({_explain(exc)})") from exc
        except SalesforceExpiredSession as exc:
            raise SourceError(
                f"Salesforce session is invalid or expired ({_explain(exc)}); log in again"
            ) from exc
        except SalesforceError as exc:
            if _transient(exc):
                raise  # retried by call()
            # 300, 400 (a malformed query, a lost query locator), 404, 405...
            raise SalesforceRequestFailed(exc) from exc
        except orjson.JSONDecodeError as exc:  # e.g. a proxy's HTML page with a 200
            raise SourceError("Salesforce answered something that is not JSON") from exc

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a simple-salesforce method with retries; every fault becomes a SourceError."""
        try:
            return self._call(method, *args, **kwargs)
        except TRANSIENT as exc:
            detail = _explain(exc) if isinstance(exc, SalesforceError) else type(exc).__name__
            raise SourceError(
                f"Salesforce kept failing after {RETRY_ATTEMPTS} attempts ({detail})"
            ) from exc
        except requests.RequestException as exc:  # neither an answer nor worth retrying
            raise SourceError(f"cannot talk to Salesforce ({type(exc).__name__})") from exc

    def readable_fields(self, sobject: str) -> set[str] | None:
        """Names of the fields this user can read, or None when the object is not there."""
        try:
            described = self.call(getattr(self.sf, sobject).describe)
        except SalesforceRequestFailed as exc:
            if isinstance(exc.upstream, SalesforceResourceNotFound):
                return None
            raise
        if not described.get("queryable", True):
            return None
        return {f["name"] for f in described.get("fields", [])}

    def query_pages(
        self, soql: str, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of records, following nextRecordsUrl; each page fetch is retried.

        The next page is requested as soon as a page arrives (:func:`one_ahead`), so the
        org prepares it while this one is processed.
        """
        return one_ahead(self._pages(soql, include_deleted))

    def _pages(self, soql: str, include_deleted: bool) -> Iterator[list[dict[str, Any]]]:
        result = self.call(self.sf.query, soql, include_deleted=include_deleted)
        while True:
            yield list(result.get("records", []))
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = self.call(self.sf.query_more, next_url, identifier_is_url=True,
                               include_deleted=include_deleted)  # fmt: skip

    def deleted_ids(self, sobject: str, start: datetime, end: datetime) -> list[str] | None:
        """Ids deleted between start and end (getDeleted); None when start is out of range."""
        try:
            answer = self.call(getattr(self.sf, sobject).deleted, start, end)
        except SalesforceRequestFailed as exc:  # e.g. an object that does not support getDeleted
            if "INVALID_REPLICATION_DATE" in str(getattr(exc.upstream, "content", "")):
                return None
            log.info("%s: no deleted-records answer (%s)", sobject, _explain(exc.upstream))
            return []
        return [d["id"] for d in answer.get("deletedRecords", [])]


class RecordRefused(SourceError):
    """Salesforce refused to change a record: a validation rule, a field this user may not
    write, a locked or deleted record. The message is Salesforce's."""


RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
CHANGED, DONE = "changed", "done"


def update_record(
    client: SalesforceClient, sobject: str, record_id: str, fields: Mapping[str, Any],
    unmodified_since: datetime,
) -> str:  # fmt: skip
    """PATCH a record only if Salesforce has not changed it since ``unmodified_since``.

    Returns ``"done"``, or ``"changed"`` when Salesforce answered 412 (someone changed
    the record in between: nothing was written). Raises :class:`RecordRefused` for a
    refusal (400, 404) and SourceError when Salesforce cannot be reached.
    """
    headers = {
        "If-Unmodified-Since": format_datetime(unmodified_since.astimezone(UTC), usegmt=True)
    }

    def attempt() -> str:
        try:
            getattr(client.sf, sobject).update(record_id, dict(fields), headers=headers)
        except SalesforceGeneralError as exc:
            if getattr(exc, "status", None) == 412:
                return CHANGED
            raise
        except (SalesforceMalformedRequest, SalesforceResourceNotFound) as exc:
            raise RecordRefused(_explain(exc)) from exc
        return DONE

    return client.call(attempt)


def current_record(
    client: SalesforceClient, sobject: str, record_id: str, fields: list[str]
) -> dict[str, Any] | None:
    """The record's ``fields`` (plus SystemModstamp, LastModifiedById) as Salesforce has
    them now; None when it is gone. The Id is checked, never formatted unchecked."""
    names = [record_id, sobject, *fields]  # SOQL binds nothing: only checked names go in
    if not RECORD_ID.fullmatch(record_id) or not all(n.replace("_", "").isalnum() for n in names):
        raise ValueError(f"not a Salesforce Id or field list: {record_id!r} {fields!r}")
    wanted = ", ".join(dict.fromkeys([*fields, "SystemModstamp", "LastModifiedById"]))
    soql = f"SELECT {wanted} FROM {sobject} WHERE Id = '{record_id}'"  # noqa: S608 (checked above)
    result = client.call(client.sf.query, soql)
    records = result.get("records") or []
    return records[0] if records else None
