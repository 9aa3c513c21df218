//! The GPS helpers: `formatGps`, `gpsDistance`, `gpsIsPointInside`.
//!
//! A point is a `"lat,lon"` string (spaces allowed, further fields such as altitude ignored), a
//! `[lat, lon]` array, or an object with `latitude`/`longitude` (or `lat` and `lon`/`lng`).
//! A polygon is an array of points, or a string of points one per line (as the Geofence node's
//! `polygonCoords`). Output punctuation is flowd's choice where Losant's is not documented:
//! `decimal` → `39.103,-84.512`; `degrees` → `39.103°N 84.512°W`; `sexagesimal` →
//! `39°06'11.16"N 84°30'43.20"W` (seconds to precision − 4 places, at least 0);
//! `gga` → `3906.1860,N,08430.7200,W` (NMEA minutes to precision − 2 places).

use super::js_number::to_fixed;
use serde_json::Value;

/// The mean Earth radius used for distances, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// Reads a point.
pub fn point(value: &Value) -> Option<(f64, f64)> {
    let num = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let (lat, lon) = match value {
        Value::String(s) => {
            let mut parts = s.split(',');
            let lat = parts.next()?.trim().parse::<f64>().ok()?;
            let lon = parts.next()?.trim().parse::<f64>().ok()?;
            (lat, lon)
        }
        Value::Array(items) if items.len() >= 2 => (num(&items[0])?, num(&items[1])?),
        Value::Object(map) => {
            let lat = map.get("latitude").or_else(|| map.get("lat"))?;
            let lon = map
                .get("longitude")
                .or_else(|| map.get("lon"))
                .or_else(|| map.get("lng"))?;
            (num(lat)?, num(lon)?)
        }
        _ => return None,
    };
    (lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0)
        .then_some((lat, lon))
}

/// Great-circle (haversine) distance in metres.
pub fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Reads a polygon.
pub fn polygon(value: &Value) -> Option<Vec<(f64, f64)>> {
    let points: Option<Vec<_>> = match value {
        Value::Array(items) => items.iter().map(point).collect(),
        Value::String(s) => s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| point(&Value::String(l.to_owned())))
            .collect(),
        _ => None,
    };
    points.filter(|p| p.len() >= 3)
}

/// Ray casting (points on the border may fall either way).
pub fn inside(p: (f64, f64), poly: &[(f64, f64)]) -> bool {
    let (y, x) = p;
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (yi, xi) = poly[i];
        let (yj, xj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// `formatGps point format precision`; `None` for an unknown format or invalid point.
pub fn format(p: (f64, f64), style: &str, precision: usize) -> Option<String> {
    let (lat, lon) = p;
    let ns = if lat < 0.0 { 'S' } else { 'N' };
    let ew = if lon < 0.0 { 'W' } else { 'E' };
    Some(match style {
        "decimal" => format!("{},{}", to_fixed(lat, precision), to_fixed(lon, precision)),
        "degrees" => format!(
            "{}°{ns} {}°{ew}",
            to_fixed(lat.abs(), precision),
            to_fixed(lon.abs(), precision)
        ),
        "sexagesimal" => {
            let places = precision.saturating_sub(4);
            let dms = |v: f64| {
                let v = v.abs();
                let deg = v.trunc();
                let minutes = (v - deg) * 60.0;
                let min = minutes.trunc();
                let sec = (minutes - min) * 60.0;
                let width = if places > 0 { places + 3 } else { 2 };
                format!("{deg}°{min:02}'{:0>width$}\"", to_fixed(sec, places))
            };
            format!("{}{ns} {}{ew}", dms(lat), dms(lon))
        }
        "gga" => {
            let places = precision.saturating_sub(2);
            let nmea = |v: f64, deg_width: usize| {
                let v = v.abs();
                let deg = v.trunc();
                let minutes = (v - deg) * 60.0;
                let width = if places > 0 { places + 3 } else { 2 };
                format!(
                    "{:0deg_width$}{:0>width$}",
                    deg as u32,
                    to_fixed(minutes, places)
                )
            };
            format!("{},{ns},{},{ew}", nmea(lat, 2), nmea(lon, 3))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn points_and_formats() {
        let p = point(&json!("39.1031,-84.512")).unwrap();
        assert_eq!(format(p, "decimal", 3).unwrap(), "39.103,-84.512");
        assert_eq!(format(p, "degrees", 3).unwrap(), "39.103°N 84.512°W");
        assert_eq!(
            format(p, "sexagesimal", 6).unwrap(),
            "39°06'11.16\"N 84°30'43.20\"W"
        );
        assert_eq!(format(p, "gga", 6).unwrap(), "3906.1860,N,08430.7200,W");
        assert_eq!(point(&json!([1, 2])), Some((1.0, 2.0)));
        assert_eq!(point(&json!({"lat": 1, "lng": "2"})), Some((1.0, 2.0)));
        assert_eq!(point(&json!("x,y")), None);
        assert_eq!(point(&json!("91,0")), None);
    }

    #[test]
    fn distance_and_inside() {
        let d = distance((39.10, -84.51), (39.11, -84.51));
        assert!((d - 1112.0).abs() < 1.0, "{d}");
        let square = polygon(&json!(["0,0", "0,10", "10,10", "10,0"])).unwrap();
        assert!(inside((5.0, 5.0), &square));
        assert!(!inside((15.0, 5.0), &square));
        assert!(polygon(&json!("0,0\n0,10\n10,10")).is_some());
    }
}
