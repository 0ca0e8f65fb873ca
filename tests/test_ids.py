"""UUIDv7 ids are valid version-7 UUIDs and strictly increasing in one process."""

from emily.ids import uuid7


def test_uuid7_is_version_7_and_monotonic() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
