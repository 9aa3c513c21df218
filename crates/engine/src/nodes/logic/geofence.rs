//! `GeofenceNode`: whether a GPS point is inside a circle or a polygon. Port 1 inside, port 0
//! outside **or when any input is not valid** (no halting error for bad coordinates).
//!
//! * `checkType: "radius"` (the default): inside when the great-circle (haversine) distance
//!   from `gpsCheck` to `gpsCenter` is at most `radius` metres; `resultPath` receives the
//!   distance in metres.
//! * `checkType: "polygonCoords"`: the polygon is `polygonCoords`, a template rendering one
//!   GPS point per line; `checkType: "polygon"`: the polygon is the array of points at
//!   `polygonPath`. `resultPath` receives `true`/`false`.
//! * `branchPath` receives `"inside"` or `"outside"`.
//!
//! Points are read from `"lat,lon"` decimal degrees, degrees-minutes-seconds
//! (`39°06'11.16"N 84°30'43.20"W`, hemisphere letters before or after, `39.103°N 84.512°W`),
//! NMEA `GLL` and `GGA` sentences (`$GPGGA,…`, any talker), the bare NMEA fields
//! (`3906.1860,N,08430.7200,W`), and — through a single-reference template such as
//! `{{data.location}}` — `[lat, lon]` arrays and `{lat, lon}`/`{latitude, longitude}` objects.
//!
//! Decisions:
//! * `gpsCheck` (and `gpsCenter`, `polygonCoords`) rendering empty is invalid input — the
//!   outside port — not a halting error: a device without a fix is outside every fence. A
//!   template that fails to render still halts with `TemplateError`.
//! * On invalid input `resultPath` is removed (`undefined`) and `branchPath` is `"outside"`.
//! * A polygon needs at least three valid points; one invalid point makes the polygon
//!   invalid. Points exactly on an edge may fall either way (ray casting on latitude and
//!   longitude as plane coordinates; polygons across the antimeridian are not handled).
//! * The fields each mode needs are checked when the flow is compiled, and a `gpsCheck` (or
//!   `gpsCenter`) without mustaches must be a valid point then — a bare path such as
//!   `data.location` is a compile error that suggests `{{data.location}}`. A negative or
//!   non-numeric radius is invalid input.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, render, template};
use crate::path::PayloadPath;
use crate::template::gps;
use crate::template::{Template, TemplateError};
use crate::value::{number_to_json, string_to_number, JsValue};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    check_type: Option<String>,
    gps_check: Option<String>,
    gps_center: Option<String>,
    radius: Option<TextOrNumber>,
    polygon_coords: Option<String>,
    polygon_path: Option<String>,
    result_path: Option<String>,
    branch_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Number(f64),
    Text(String),
}

enum Fence {
    Radius { center: Template, radius: Template },
    PolygonCoords(Template),
    PolygonPath(PayloadPath),
}

pub struct Geofence {
    check: Template,
    fence: Fence,
    result: Option<PayloadPath>,
    branch: Option<PayloadPath>,
}

fn required_template(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
    mode: &str,
) -> Result<Template, CompileError> {
    match text.filter(|t| !t.trim().is_empty()) {
        Some(text) => template(spec, field, text),
        None => Err(spec.error(format!("{field} is required when checkType is {mode}"))),
    }
}

/// A template of a point: without mustaches it must be a point already.
fn point_template(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
    mode: &str,
) -> Result<Template, CompileError> {
    let compiled = required_template(spec, field, text, mode)?;
    if let Some(text) = compiled.static_text() {
        if parse_point(&Value::String(text.to_owned())).is_none() {
            return Err(spec.error(format!(
                "{field}: \"{text}\" is not a GPS point (to read the payload, write \
                 {{{{{}}}}})",
                text.trim()
            )));
        }
    }
    Ok(compiled)
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let mode = config
        .check_type
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or("radius");
    let fence = match mode {
        "radius" => {
            let radius = match &config.radius {
                Some(TextOrNumber::Number(n)) => Some(crate::value::number_to_string(*n)),
                Some(TextOrNumber::Text(text)) => Some(text.clone()),
                None => None,
            };
            Fence::Radius {
                center: point_template(spec, "gpsCenter", config.gps_center.as_deref(), mode)?,
                radius: required_template(spec, "radius", radius.as_deref(), mode)?,
            }
        }
        "polygonCoords" => Fence::PolygonCoords(required_template(
            spec,
            "polygonCoords",
            config.polygon_coords.as_deref(),
            mode,
        )?),
        "polygon" => match optional_path(spec, "polygonPath", config.polygon_path.as_deref())? {
            Some(path) => Fence::PolygonPath(path),
            None => return Err(spec.error("polygonPath is required when checkType is polygon")),
        },
        other => {
            return Err(spec.error(format!(
                "checkType must be radius, polygonCoords or polygon, not \"{other}\""
            )))
        }
    };
    let check = match config.gps_check.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(_) => point_template(spec, "gpsCheck", config.gps_check.as_deref(), mode)?,
        None => return Err(spec.error("gpsCheck is required")),
    };
    Ok(CompiledNodeType::new(
        Geofence {
            check,
            fence,
            result: optional_path(spec, "resultPath", config.result_path.as_deref())?,
            branch: optional_path(spec, "branchPath", config.branch_path.as_deref())?,
        },
        2,
    ))
}

// ---------------------------------------------------------------------------------------------
// Reading points.

fn valid(lat: f64, lon: f64) -> Option<(f64, f64)> {
    (lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0)
        .then_some((lat, lon))
}

/// NMEA `ddmm.mmmm` (or `dddmm.mmmm`) with its hemisphere letter.
fn nmea_coordinate(value: &str, hemisphere: &str, degree_digits: usize) -> Option<f64> {
    let value = value.trim();
    let dot = value.find('.').unwrap_or(value.len());
    if dot < 2 || dot > degree_digits + 2 || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    let degrees: f64 = value[..dot - 2].parse().unwrap_or(0.0);
    let minutes: f64 = value[dot - 2..].parse().ok()?;
    if minutes >= 60.0 {
        return None;
    }
    let magnitude = degrees + minutes / 60.0;
    match hemisphere.trim() {
        "N" | "E" | "n" | "e" => Some(magnitude),
        "S" | "W" | "s" | "w" => Some(-magnitude),
        _ => None,
    }
}

/// `lat, N/S, lon, E/W` fields.
fn nmea_fields(fields: &[&str]) -> Option<(f64, f64)> {
    match fields {
        [lat, ns, lon, ew, ..] if matches!(ns.trim(), "N" | "S") => {
            valid(nmea_coordinate(lat, ns, 2)?, nmea_coordinate(lon, ew, 3)?)
        }
        _ => None,
    }
}

fn nmea_sentence(text: &str) -> Option<(f64, f64)> {
    let body = text.trim().trim_start_matches('$');
    let body = body.split('*').next()?;
    let fields: Vec<&str> = body.split(',').collect();
    let kind = fields.first()?;
    if kind.len() < 3 {
        return None;
    }
    match &kind[kind.len() - 3..] {
        "GLL" => nmea_fields(fields.get(1..)?),
        "GGA" => nmea_fields(fields.get(2..)?),
        "RMC" => nmea_fields(fields.get(3..)?),
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum Piece {
    Number(f64),
    Hemisphere(char),
}

/// Degrees-minutes-seconds (or decimal degrees) with hemisphere letters.
fn dms(text: &str) -> Option<(f64, f64)> {
    let mut pieces = Vec::new();
    let mut number = String::new();
    let flush = |number: &mut String, pieces: &mut Vec<Piece>| -> Option<()> {
        if !number.is_empty() {
            pieces.push(Piece::Number(number.parse().ok()?));
            number.clear();
        }
        Some(())
    };
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            '-' if number.is_empty() => number.push(c),
            'N' | 'S' | 'E' | 'W' | 'n' | 's' | 'e' | 'w' => {
                flush(&mut number, &mut pieces)?;
                pieces.push(Piece::Hemisphere(c.to_ascii_uppercase()));
            }
            '°' | '\'' | '"' | '′' | '″' | ',' | ' ' | '\t' | 'º' => {
                flush(&mut number, &mut pieces)?;
            }
            _ => return None,
        }
    }
    flush(&mut number, &mut pieces)?;
    let hemispheres: Vec<usize> = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, Piece::Hemisphere(_)))
        .map(|(i, _)| i)
        .collect();
    let [first, second] = hemispheres[..] else {
        return None;
    };
    let numbers = |range: &[Piece]| -> Option<f64> {
        let values: Vec<f64> = range
            .iter()
            .map(|p| match p {
                Piece::Number(n) => Some(*n),
                Piece::Hemisphere(_) => None,
            })
            .collect::<Option<_>>()?;
        let (degrees, rest) = values.split_first()?;
        if rest.len() > 2 || rest.iter().any(|v| *v < 0.0 || *v >= 60.0) {
            return None;
        }
        let minutes = rest.first().copied().unwrap_or(0.0);
        let seconds = rest.get(1).copied().unwrap_or(0.0);
        let magnitude = degrees.abs() + minutes / 60.0 + seconds / 3600.0;
        Some(magnitude.copysign(if *degrees < 0.0 { -1.0 } else { 1.0 }))
    };
    let (lat_range, lon_range) = if first == 0 {
        (&pieces[1..second], &pieces[second + 1..])
    } else {
        if second != pieces.len() - 1 {
            return None;
        }
        (&pieces[..first], &pieces[first + 1..second])
    };
    let (Piece::Hemisphere(h1), Piece::Hemisphere(h2)) = (&pieces[first], &pieces[second]) else {
        return None;
    };
    let (lat_h, lon_h, lat_range, lon_range) = match (h1, h2) {
        ('N' | 'S', 'E' | 'W') => (*h1, *h2, lat_range, lon_range),
        ('E' | 'W', 'N' | 'S') => (*h2, *h1, lon_range, lat_range),
        _ => return None,
    };
    let mut lat = numbers(lat_range)?;
    let mut lon = numbers(lon_range)?;
    if lat_h == 'S' {
        lat = -lat;
    }
    if lon_h == 'W' {
        lon = -lon;
    }
    valid(lat, lon)
}

/// Reads a point in any of the accepted forms.
fn parse_point(value: &Value) -> Option<(f64, f64)> {
    let Value::String(text) = value else {
        return gps::point(value);
    };
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.starts_with('$') {
        return nmea_sentence(t);
    }
    let fields: Vec<&str> = t.split(',').collect();
    if fields.len() == 4 {
        if let Some(point) = nmea_fields(&fields) {
            return Some(point);
        }
    }
    if t.chars().any(|c| c.is_ascii_alphabetic() || c == '°') {
        return dms(t);
    }
    if let Some(point) = gps::point(value) {
        return Some(point);
    }
    dms(t)
}

fn parse_polygon(value: &Value) -> Option<Vec<(f64, f64)>> {
    let points: Option<Vec<_>> = match value {
        Value::Array(items) => items.iter().map(parse_point).collect(),
        Value::String(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_point(&Value::String(l.to_owned())))
            .collect(),
        _ => None,
    };
    points.filter(|p| p.len() >= 3)
}

fn render_point(template: &Template, payload: &Value) -> Result<Option<(f64, f64)>, NodeError> {
    let value = template.render_value(payload).map_err(|e: TemplateError| {
        NodeError::new(crate::error::ErrorName::TemplateError, e.to_string())
    })?;
    Ok(match value {
        JsValue::Undefined => None,
        other => other.to_json().as_ref().and_then(parse_point),
    })
}

impl Node for Geofence {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let check = render_point(&self.check, payload)?;
        // `Some(result)` for valid input.
        let outcome: Option<(bool, Value)> = match &self.fence {
            Fence::Radius { center, radius } => {
                let center = render_point(center, payload)?;
                let radius = render(radius, payload)?;
                let radius = if radius.trim().is_empty() {
                    f64::NAN
                } else {
                    string_to_number(&radius)
                };
                match (check, center) {
                    (Some(check), Some(center)) if radius.is_finite() && radius >= 0.0 => {
                        let distance = gps::distance(check, center);
                        number_to_json(distance).map(|d| (distance <= radius, d))
                    }
                    _ => None,
                }
            }
            Fence::PolygonCoords(template) => {
                let text = render(template, payload)?;
                let polygon = parse_polygon(&Value::String(text));
                check
                    .zip(polygon)
                    .map(|(p, polygon)| gps::inside(p, &polygon))
                    .map(|inside| (inside, Value::Bool(inside)))
            }
            Fence::PolygonPath(path) => {
                let polygon = path.get(payload).and_then(|v| parse_polygon(&v));
                check
                    .zip(polygon)
                    .map(|(p, polygon)| gps::inside(p, &polygon))
                    .map(|inside| (inside, Value::Bool(inside)))
            }
        };
        let inside = outcome.as_ref().is_some_and(|(inside, _)| *inside);
        if let Some(path) = &self.result {
            match outcome {
                Some((_, result)) => path.set(payload, result),
                None => {
                    path.remove(payload);
                }
            }
        }
        if let Some(path) = &self.branch {
            let word = if inside { "inside" } else { "outside" };
            path.set(payload, Value::String(word.to_owned()));
        }
        Ok(Outcome::Port(usize::from(inside)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_point;
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn close(p: Option<(f64, f64)>, lat: f64, lon: f64) -> bool {
        p.is_some_and(|(a, b)| (a - lat).abs() < 1e-4 && (b - lon).abs() < 1e-4)
    }

    #[test]
    fn point_formats() {
        let s = |t: &str| parse_point(&json!(t));
        assert!(close(s("39.1031,-84.512"), 39.1031, -84.512));
        assert!(close(s(" 39.1031 , -84.512 "), 39.1031, -84.512));
        assert!(close(s("39°06'11.16\"N 84°30'43.20\"W"), 39.1031, -84.512));
        assert!(close(
            s("39° 6' 11.16\" N, 84° 30' 43.2\" W"),
            39.1031,
            -84.512
        ));
        assert!(close(s("N 39 6 11.16 W 84 30 43.2"), 39.1031, -84.512));
        assert!(close(s("39.1031°N 84.512°W"), 39.1031, -84.512));
        assert!(close(s("84°30'43.2\"W 39°06'11.16\"N"), 39.1031, -84.512));
        assert!(close(s("33°51'S 151°12'E"), -33.85, 151.2));
        assert!(close(
            s("$GPGLL,3906.1860,N,08430.7200,W,225444,A*1D"),
            39.1031,
            -84.512
        ));
        assert!(close(
            s("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"),
            48.1173,
            11.5167
        ));
        assert!(close(s("3906.1860,N,08430.7200,W"), 39.1031, -84.512));
        assert!(close(parse_point(&json!([1.5, 2.5])), 1.5, 2.5));
        assert!(close(
            parse_point(&json!({"latitude": 1, "longitude": "2"})),
            1.0,
            2.0
        ));
        for bad in [
            "",
            "data.location",
            "91,0",
            "0,181",
            "abc,def",
            "39°06'N",
            "$GPXYZ,1,2",
            "39°75'N 84°W",
            "$GPGGA,123519,,N,,E,1",
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
        assert_eq!(parse_point(&json!(5)), None);
    }

    fn radius(check: Value) -> (usize, Value) {
        run_node(
            "GeofenceNode",
            &json!({"checkType": "radius", "gpsCheck": "{{data.location}}",
                "gpsCenter": "52.5200,13.4050", "radius": "{{data.r}}",
                "resultPath": "working.distM", "branchPath": "working.where"}),
            json!({"data": {"location": check, "r": 250}}),
        )
        .unwrap()
    }

    #[test]
    fn radius_mode() {
        let (port, after) = radius(json!("52.5210,13.4050"));
        assert_eq!(port, 1);
        let d = after["working"]["distM"].as_f64().unwrap();
        assert!((d - 111.19).abs() < 0.1, "{d}");
        assert_eq!(after["working"]["where"], "inside");
        let (port, after) = radius(json!("52.5300,13.4050"));
        assert_eq!(port, 0);
        assert!(after["working"]["distM"].as_f64().unwrap() > 1000.0);
        assert_eq!(after["working"]["where"], "outside");
        // An object point through the typed passthrough.
        assert_eq!(radius(json!({"lat": 52.52, "lon": 13.405})).0, 1);
        // The same point is at distance 0.
        let (_, after) = radius(json!("52.52,13.405"));
        assert_eq!(after["working"]["distM"], json!(0));
    }

    #[test]
    fn invalid_input_is_outside() {
        for bad in [json!("nowhere"), Value::Null, json!(""), json!(12)] {
            let (port, after) = radius(bad.clone());
            assert_eq!(port, 0, "{bad}");
            assert!(after["working"].get("distM").is_none(), "{bad}");
            assert_eq!(after["working"]["where"], "outside");
        }
        // A missing value and a bad radius are invalid too.
        let config = json!({"gpsCheck": "{{data.none}}", "gpsCenter": "1,1", "radius": "10",
            "resultPath": "r"});
        let (port, after) = run_node("GeofenceNode", &config, json!({"r": 5})).unwrap();
        assert_eq!(port, 0);
        assert!(after.get("r").is_none());
        let config = json!({"gpsCheck": "1,1", "gpsCenter": "1,1", "radius": "{{data.r}}"});
        for r in [json!(-1), json!("far"), Value::Null] {
            let (port, _) = run_node("GeofenceNode", &config, json!({"data": {"r": r}})).unwrap();
            assert_eq!(port, 0, "{r}");
        }
        // A template failure still halts.
        let config = json!({"gpsCheck": "{{decodeURIComponent data.s}}", "gpsCenter": "1,1",
            "radius": "10"});
        let e = run_node("GeofenceNode", &config, json!({"data": {"s": "%E0%A4%A"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
    }

    #[test]
    fn polygon_modes() {
        let square = "0,0\n0,10\n10,10\n10,0";
        let coords = json!({"checkType": "polygonCoords", "gpsCheck": "{{data.p}}",
            "polygonCoords": "{{data.poly}}", "resultPath": "working.inside",
            "branchPath": "working.where"});
        let run = |p: &str, poly: &str| {
            run_node(
                "GeofenceNode",
                &coords,
                json!({"data": {"p": p, "poly": poly}}),
            )
            .unwrap()
        };
        let (port, after) = run("5,5", square);
        assert_eq!(port, 1);
        assert_eq!(after["working"], json!({"inside": true, "where": "inside"}));
        let (port, after) = run("15,5", square);
        assert_eq!(port, 0);
        assert_eq!(
            after["working"],
            json!({"inside": false, "where": "outside"})
        );
        assert_eq!(run("5,5", "0,0\n0,10").0, 0);
        assert_eq!(run("5,5", "0,0\nbad\n10,10\n10,0").0, 0);
        let (port, after) = run("5,5", "0,0\n0,10");
        assert_eq!(port, 0);
        assert!(after["working"].get("inside").is_none());
        let static_coords = json!({"checkType": "polygonCoords", "gpsCheck": "{{data.p}}",
            "polygonCoords": "0°N 0°E\n0°N 10°E\n10°N 10°E\n10°N 0°E"});
        let (port, _) = run_node(
            "GeofenceNode",
            &static_coords,
            json!({"data": {"p": "5,5"}}),
        )
        .unwrap();
        assert_eq!(port, 1);

        let by_path = json!({"checkType": "polygon", "gpsCheck": "{{data.p}}",
            "polygonPath": "data.fence", "resultPath": "working.inside"});
        let run = |fence: Value| {
            run_node(
                "GeofenceNode",
                &by_path,
                json!({"data": {"p": "5,5", "fence": fence}}),
            )
            .unwrap()
        };
        assert_eq!(run(json!(["0,0", "0,10", "10,10", "10,0"])).0, 1);
        assert_eq!(run(json!([[0, 0], [0, 10], [10, 10], [10, 0]])).0, 1);
        assert_eq!(run(json!(["20,20", "20,30", "30,30"])).0, 0);
        assert_eq!(run(json!(square)).0, 1);
        assert_eq!(run(json!("nope")).0, 0);
        assert_eq!(run(Value::Null).0, 0);
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"gpsCheck": "{{data.l}}", "gpsCenter": "1,1", "radius": 100, "x": 1});
        assert_eq!(compile_node("GeofenceNode", &ok).unwrap().ports, 2);
        for bad in [
            json!({}),
            json!({"gpsCheck": "{{data.l}}"}),
            json!({"gpsCheck": "{{data.l}}", "gpsCenter": "1,1"}),
            json!({"gpsCheck": "{{data.l}}", "radius": "5"}),
            json!({"gpsCheck": "data.location", "gpsCenter": "1,1", "radius": "5"}),
            json!({"gpsCheck": "{{data.l}}", "gpsCenter": "center", "radius": "5"}),
            json!({"gpsCheck": "{{data.l}}", "checkType": "polygonCoords"}),
            json!({"gpsCheck": "{{data.l}}", "checkType": "polygon"}),
            json!({"gpsCheck": "{{data.l}}", "checkType": "polygon", "polygonPath": "{{x}}"}),
            json!({"gpsCheck": "{{data.l}}", "checkType": "circle"}),
            json!({"gpsCheck": "{{data.l}}", "gpsCenter": "1,1", "radius": true}),
            json!({"gpsCheck": 5, "gpsCenter": "1,1", "radius": "5"}),
            json!({"gpsCheck": "{{#if}}", "gpsCenter": "1,1", "radius": "5"}),
        ] {
            let e = compile_node("GeofenceNode", &bad).err().unwrap();
            assert!(e.0.contains("(GeofenceNode)"), "{bad}: {e}");
        }
        let e = compile_node(
            "GeofenceNode",
            &json!({"gpsCheck": "data.location", "gpsCenter": "1,1", "radius": "5"}),
        )
        .err()
        .unwrap();
        assert!(e.0.contains("{{data.location}}"), "{e}");
    }
}
