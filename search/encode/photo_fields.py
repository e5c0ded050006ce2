"""When, with what and where a photo or video was taken, as typed item fields the filter language reads
(`taken_at >= 2023-07-01 and camera_model ~ "pixel"`): EXIF through Pillow (its Exif IFD and GPS IFD),
a container's creation_time through PyAV.

Cameras write what they like: a value of the wrong type, out of range or unreadable is left out, never
fatal, and the picture is indexed all the same.
"""

from __future__ import annotations

import datetime as dt
import re

from PIL import ExifTags, Image

EXIF_IFD, GPS_IFD = ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo
MAKE, MODEL = ExifTags.Base.Make, ExifTags.Base.Model
TAKEN, OFFSET = ExifTags.Base.DateTimeOriginal, ExifTags.Base.OffsetTimeOriginal
LENS = ExifTags.Base.LensModel
G = ExifTags.GPS
MAX_TEXT = 200  # a maker's name, not a maker note
EXIF_TIME = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
OFFSET_TIME = re.compile(r"[+-]\d{2}:\d{2}")


def photo_fields(source: Image.Image | Image.Exif) -> dict[str, str | float]:
    """taken_at (ISO 8601, with the offset when the camera gave one), camera_make, camera_model, lens,
    gps_lat, gps_lon (degrees, south and west negative) and gps_alt (metres) where the EXIF (a picture's,
    or one read from a RAW file's TIFF structure) has them."""
    try:
        exif = source if isinstance(source, Image.Exif) else source.getexif()
        sub = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # a broken EXIF block: Pillow raises many kinds
        return {}
    out: dict[str, str | float] = {}
    taken = taken_at(sub.get(TAKEN), sub.get(OFFSET))
    if taken:
        out["taken_at"] = taken
    for name, value in (
        ("camera_make", exif.get(MAKE)),
        ("camera_model", exif.get(MODEL)),
        ("lens", sub.get(LENS)),
    ):
        text = _text(value)
        if text:
            out[name] = text
    lat = _degrees(gps.get(G.GPSLatitude), gps.get(G.GPSLatitudeRef), 90)
    lon = _degrees(gps.get(G.GPSLongitude), gps.get(G.GPSLongitudeRef), 180)
    if lat is not None and lon is not None:
        out["gps_lat"], out["gps_lon"] = lat, lon
        alt = _number(gps.get(G.GPSAltitude))
        if alt is not None and abs(alt) < 100_000:
            out["gps_alt"] = round(-alt if gps.get(G.GPSAltitudeRef) in (1, b"\x01") else alt, 1)
    return out


def taken_at(value: object, offset: object = None) -> str | None:
    """EXIF's "2023:07:14 10:30:05" (and "+02:00") as "2023-07-14T10:30:05+02:00"; None when it is no date."""
    match = EXIF_TIME.fullmatch(_text(value) or "")
    if not match:
        return None
    try:
        when = dt.datetime(*map(int, match.groups()))
    except ValueError:  # 0000:00:00 00:00:00, month 13
        return None
    zone = _text(offset) or ""
    return when.isoformat() + (zone if OFFSET_TIME.fullmatch(zone) else "")


def creation_time(value: object) -> str | None:
    """A container's creation_time ("2023-07-14T10:30:05.000000Z") as ISO 8601 in UTC, to the second."""
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.year < 1971:  # 1904-01-01 or 1970-01-01: a camera that never set its clock
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    return when.replace(microsecond=0).isoformat()


ISO6709 = re.compile(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")
LOCATION_TAGS = ("location", "com.apple.quicktime.location.ISO6709")  # MP4 ©xyz / 3GPP loci; QuickTime


def video_place(tags: dict) -> dict[str, float]:
    """Where a video or recording was made, from its container's tags: an ISO 6709 point in decimal
    degrees ("+48.8582+002.2945+035.000/", what phones write) as gps_lat, gps_lon and gps_alt."""
    for tag in LOCATION_TAGS:
        found = ISO6709.match(str(tags.get(tag, "")).strip())
        if found:
            lat, lon = float(found[1]), float(found[2])
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                place = {"gps_lat": lat, "gps_lon": lon}
                return place | ({"gps_alt": float(found[3])} if found[3] else {})
    return {}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:MAX_TEXT] if text else None


def _number(value: object) -> float | None:
    try:
        number = float(value)  # IFDRational, int or float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _degrees(value: object, ref: object, limit: float) -> float | None:
    """(degrees, minutes, seconds) and N/S/E/W as signed decimal degrees, within ±limit."""
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_number(v) for v in value]
    if any(p is None for p in parts):
        return None
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    side = _text(ref) or ""
    degrees = -degrees if side.upper() in ("S", "W") else degrees
    return round(degrees, 6) if abs(degrees) <= limit else None
