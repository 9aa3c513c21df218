//! Losant's template and expression languages, table by table: printing, escaping, paths,
//! blocks, every helper example of FLOW-JSON §9.3, JSON templates, expressions with
//! JavaScript's coercions, and compile-time errors.

use flowd_engine::expression::{Expression, ExpressionError};
use flowd_engine::template::{JsonTemplate, Template, TemplateError};
use flowd_engine::value::JsValue;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn payload() -> Value {
    json!({
        "data": {
            "t": 21.456, "name": "  Pump a  ", "tags": ["x", "y"], "n": 4,
            "none": null, "zero": 0, "empty": "", "list": [1, 2, 3],
            "obj": {"a": 1, "b": "two"},
            "html": "<b>\"Tom\" & 'Jerry'</b> `x` =",
            "arr": [{"key": "a", "value": 1}, {"key": "b", "value": 9}],
            "nested": {"deep": {"x": 5}},
            "s": "{\"a\":7}",
            "f": 0.30000000000000004, "big": 1e21, "small": 1e-7,
            "last": "2024-01-15T14:25:00.000Z",
            "users": [{"name": "Ann", "age": 30}, {"name": "Bob", "age": 25}],
            "bool": true, "falsy": false, "emptyList": [], "emptyObj": {},
            "mixed": [1, null, [2, 3]],
            "word": "héllo",
            "doc": [{"type": "element", "name": "p", "attributes": {"class": "x"},
                     "elements": [{"type": "text", "text": "a < b"}]}]
        },
        "time": "2024-01-15T14:30:00.000Z",
        "globals": {"limit": 20, "site": "A&B"},
        "experience": {"user": {"firstName": "Ann"}}
    })
}

/// (template, rendered text)
const TEMPLATES: &[(&str, &str)] = &[
    // Printing: JavaScript's String(value), nothing for null/undefined.
    ("{{data.t}}", "21.456"),
    ("{{data.list}}", "1,2,3"),
    ("{{data.mixed}}", "1,,2,3"),
    ("{{data.obj}}", "[object Object]"),
    ("{{data.none}}", ""),
    ("{{data.missing}}", ""),
    ("{{data.missing.deeper.still}}", ""),
    ("{{data.f}}", "0.30000000000000004"),
    ("{{data.big}}", "1e+21"),
    ("{{data.small}}", "1e-7"),
    ("{{data.bool}}/{{data.falsy}}/{{data.zero}}", "true/false/0"),
    ("{{data.emptyList}}|{{data.emptyObj}}", "|[object Object]"),
    ("plain text, no braces", "plain text, no braces"),
    ("", ""),
    ("Temp {{data.t}} °C", "Temp 21.456 °C"),
    // Paths.
    ("{{data.list.length}}", "3"),
    ("{{data.name.length}}", "10"),
    ("{{data.word.length}}", "5"),
    ("{{data.list.[0]}}", "1"),
    ("{{data.list.0}}", "1"),
    ("{{data.list.[7]}}", ""),
    ("{{data.users.[1].name}}", "Bob"),
    ("{{data.name.[2]}}", "P"),
    ("{{data.nested.deep.x}}", "5"),
    ("{{this.data.n}}", "4"),
    ("{{./data.n}}", "4"),
    ("{{data/n}}", "4"),
    ("{{[data].[n]}}", "4"),
    ("{{@root.data.n}}", "4"),
    ("{{data.tags.length}}", "2"),
    // Escaping as Handlebars.js does it.
    (
        "{{data.html}}",
        "&lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt; &#x60;x&#x60; &#x3D;",
    ),
    ("{{{data.html}}}", "<b>\"Tom\" & 'Jerry'</b> `x` ="),
    ("{{&data.html}}", "<b>\"Tom\" & 'Jerry'</b> `x` ="),
    ("{{globals.site}}", "A&amp;B"),
    // Comments, escapes, whitespace control, standalone lines.
    ("a{{! a comment }}b", "ab"),
    ("a{{!-- has }} inside --}}b", "ab"),
    ("\\{{data.n}} is {{data.n}}", "{{data.n}} is 4"),
    ("a {{~data.n~}} b", "a4b"),
    ("[ {{~#if data.n~}} yes {{~/if~}} ]", "[yes]"),
    ("{{#each data.tags}}\n{{this}}\n{{/each}}\n", "x\ny\n"),
    (
        "<ul>\n  {{#each data.tags}}\n  <li>{{this}}</li>\n  {{/each}}\n</ul>",
        "<ul>\n  <li>x</li>\n  <li>y</li>\n</ul>",
    ),
    ("{{#if data.n}}\nyes\n{{else}}\nno\n{{/if}}\n", "yes\n"),
    ("x {{#if data.n}}y{{/if}} z", "x y z"),
    // Block helpers: FLOW-JSON §9.3's examples.
    ("{{#if data.n}}on{{else}}off{{/if}}", "on"),
    ("{{#unless data.n}}zero{{/unless}}", ""),
    ("{{#eq data.n 4}}four{{/eq}}", "four"),
    ("{{#ne data.n 4}}x{{else}}y{{/ne}}", "y"),
    ("{{#gt data.n 3}}big{{/gt}}", "big"),
    ("{{#lte data.n 4}}ok{{/lte}}", "ok"),
    ("{{#match \"err42\" \"^err\"}}E{{/match}}", "E"),
    ("{{#includes data.tags \"y\"}}has{{/includes}}", "has"),
    (
        "{{#each data.tags}}{{@index}}={{this}};{{/each}}",
        "0=x;1=y;",
    ),
    ("{{#with experience.user}}{{firstName}}{{/with}}", "Ann"),
    // Block helpers: more.
    ("{{#if data.zero}}a{{else}}b{{/if}}", "b"),
    ("{{#if data.zero includeZero=true}}a{{else}}b{{/if}}", "a"),
    ("{{#if data.emptyList}}a{{else}}b{{/if}}", "b"),
    ("{{#if data.emptyObj}}a{{else}}b{{/if}}", "a"),
    ("{{#if data.empty}}a{{else}}b{{/if}}", "b"),
    ("{{#if data.none}}a{{else}}b{{/if}}", "b"),
    (
        "{{#if data.missing}}a{{else if data.n}}c{{else}}b{{/if}}",
        "c",
    ),
    (
        "{{#if data.missing}}a{{else if data.none}}c{{else}}b{{/if}}",
        "b",
    ),
    ("{{#unless data.missing}}u{{else}}v{{/unless}}", "u"),
    ("{{^if data.n}}no{{else}}yes{{/if}}", "yes"),
    ("{{#if data.n}}a{{^}}b{{/if}}", "a"),
    (
        "{{#each data.obj}}{{@key}}:{{this}}{{#unless @last}},{{/unless}}{{/each}}",
        "a:1,b:two",
    ),
    (
        "{{#each data.users}}{{name}}({{../data.n}}){{#if @first}}!{{/if}}{{/each}}",
        "Ann(4)!Bob(4)",
    ),
    (
        "{{#each data.users}}{{#if @last}}{{@index}}{{/if}}{{/each}}",
        "1",
    ),
    ("{{#each data.emptyList}}x{{else}}none{{/each}}", "none"),
    ("{{#each data.missing}}x{{else}}none{{/each}}", "none"),
    (
        "{{#each data.name}}x{{else}}not iterable{{/each}}",
        "not iterable",
    ),
    (
        "{{#each data.users}}{{#each ../data.tags}}{{../name}}{{this}}{{/each}}{{/each}}",
        "AnnxAnnyBobxBoby",
    ),
    ("{{#each data.users}}{{@root.data.n}}{{/each}}", "44"),
    (
        "{{#each data.users}}{{#with this}}{{@index}}{{/with}}{{/each}}",
        "01",
    ),
    (
        "{{#each data.users}}{{#each ../data.tags}}{{@../index}}{{@index}} {{/each}}{{/each}}",
        "00 01 10 11 ",
    ),
    ("{{#with data.nested}}{{deep.x}}{{/with}}", "5"),
    ("{{#with data.missing}}a{{else}}b{{/with}}", "b"),
    (
        "{{#with data.nested.deep}}{{x}}-{{../data.n}}{{/with}}",
        "5-4",
    ),
    ("{{#each (array 1 2 3)}}{{this}}{{/each}}", "123"),
    ("{{#with (obj a=1)}}{{a}}{{/with}}", "1"),
    ("{{#gt data.t 21}}hot{{else}}cold{{/gt}}", "hot"),
    ("{{#gte data.n 5}}a{{else}}b{{/gte}}", "b"),
    ("{{#lt data.n \"10\"}}lt{{/lt}}", "lt"),
    ("{{#lt data.missing 10}}lt{{else}}nan{{/lt}}", "nan"),
    ("{{#eq data.n \"4\"}}loose{{else}}strict{{/eq}}", "strict"),
    ("{{#eq data.name \"  Pump a  \"}}same{{/eq}}", "same"),
    ("{{#ne data.missing data.none}}differ{{/ne}}", "differ"),
    ("{{#match data.name \"pump\"}}y{{else}}n{{/match}}", "n"),
    ("{{#match data.name \"(?i)pump\"}}y{{else}}n{{/match}}", "y"),
    (
        "{{#match data.name \"P(?=ump)\"}}lookahead{{/match}}",
        "lookahead",
    ),
    ("{{#includes \"hello\" \"ell\"}}y{{/includes}}", "y"),
    ("{{#includes data.obj \"two\"}}y{{/includes}}", "y"),
    ("{{#includes data.list 4}}y{{else}}n{{/includes}}", "n"),
    ("{{#if (eq data.n 4)}}yes{{/if}}", "yes"),
    ("{{#if (gt data.n 10)}}yes{{else}}no{{/if}}", "no"),
    ("{{#if (includes data.tags \"x\")}}x!{{/if}}", "x!"),
    ("{{eq data.n 4}}", "true"),
    // Math helpers.
    ("{{add 2 3}}", "5"),
    ("{{subtract 10 4}}", "6"),
    ("{{multiply 1.5 4}}", "6"),
    ("{{divide 9 4}}", "2.25"),
    ("{{ceil 1.2}}", "2"),
    ("{{floor 1.8}}", "1"),
    ("{{max 3 8}}", "8"),
    ("{{min 3 8}}", "3"),
    ("{{scaleLinear 0 10 0 100 2.5}}", "25"),
    ("{{add \"2\" 3}}", "5"),
    ("{{add data.t 1}}", "22.456"),
    ("{{add 0.1 0.2}}", "0.30000000000000004"),
    ("{{divide 1 0}}", "Infinity"),
    ("{{add data.missing 1}}", "NaN"),
    ("{{multiply (add 1 2) (subtract 10 6)}}", "12"),
    ("{{add -1 -2.5}}", "-3.5"),
    // String helpers.
    ("{{upper \"ok\"}}", "OK"),
    ("{{lower \"OK\"}}", "ok"),
    ("{{titleCase \"hot water\"}}", "Hot Water"),
    ("{{titleCase \"hOT wATER\"}}", "Hot Water"),
    ("{{trim data.name}}", "Pump a"),
    ("[{{upper data.name}}]", "[  PUMP A  ]"),
    ("{{substring \"abcdef\" 2 4}}", "cd"),
    ("{{substring \"abcdef\" 4 2}}", "cd"),
    ("{{substring \"abcdef\" 3}}", "def"),
    ("{{substring \"abcdef\" -2 2}}", "ab"),
    ("{{join data.tags \"|\"}}", "x|y"),
    ("{{join data.tags}}", "x,y"),
    ("{{join data.mixed \"-\"}}", "1--2,3"),
    ("{{length data.tags}}", "2"),
    ("{{length data.obj}}", "2"),
    ("{{length \"héllo\"}}", "5"),
    ("{{length data.n}}", ""),
    ("{{defaultTo data.none \"n/a\"}}", "n/a"),
    ("{{defaultTo data.missing \"n/a\"}}", "n/a"),
    ("{{defaultTo data.empty \"n/a\"}}", "n/a"),
    ("{{defaultTo data.zero \"n/a\"}}", "0"),
    ("{{defaultTo data.n \"n/a\"}}", "4"),
    ("{{typeof data.tags}}", "array"),
    (
        "{{typeof data.n}} {{typeof data.name}} {{typeof data.bool}}",
        "number string boolean",
    ),
    (
        "{{typeof data.none}} {{typeof data.missing}} {{typeof data.obj}}",
        "null undefined object",
    ),
    // Encoding and JSON.
    ("{{encodeURIComponent \"a b/c\"}}", "a%20b%2Fc"),
    ("{{decodeURIComponent \"a%20b\"}}", "a b"),
    ("{{encodeURI \"http://h/a b\"}}", "http://h/a%20b"),
    ("{{decodeURI \"a%20b%2F\"}}", "a b%2F"),
    // FLOW-JSON shows `aGk=`; Handlebars.js escapes `=` in `{{ }}` (helpers return plain
    // strings), so the raw form needs triple braces.
    ("{{{encodeBase64 \"hi\"}}}", "aGk="),
    ("{{encodeBase64 \"hi\"}}", "aGk&#x3D;"),
    ("{{decodeBase64 \"aGk=\"}}", "hi"),
    (
        "{{decodeBase64 (encodeBase64 \"héllo wörld\")}}",
        "héllo wörld",
    ),
    ("{{{queryStringEncode (obj a=1 b=\"x y\")}}}", "a=1&b=x%20y"),
    (
        "{{queryStringEncode (obj a=1 b=\"x y\")}}",
        "a&#x3D;1&amp;b&#x3D;x%20y",
    ),
    ("{{jsonEncode data.tags}}", "[\"x\",\"y\"]"),
    ("{{{jsonEncode data.tags}}}", "[\"x\",\"y\"]"),
    (
        "{{jsonEncode data.html}}",
        "\"<b>\\\"Tom\\\" & 'Jerry'</b> `x` =\"",
    ),
    (
        "{{jsonEncode data.obj 2}}",
        "{\n  \"a\": 1,\n  \"b\": \"two\"\n}",
    ),
    ("{{jsonEncode data.missing}}", ""),
    ("{{jsonEncode data.n}}", "4"),
    ("{{lookup (jsonDecode \"{\\\"a\\\":7}\") \"a\"}}", "7"),
    ("{{jsonEncode (jsonDecode data.s)}}", "{\"a\":7}"),
    ("{{jsonDecode \"nope\"}}", ""),
    ("{{jsonDecode \"[1,2]\"}}", "1,2"),
    // Numbers and dates.
    ("{{format 1234.5 \",.2f\"}}", "1,234.50"),
    ("{{format time \"YYYY-MM-DD\"}}", "2024-01-15"),
    ("{{format time \"x\"}}", "1705329000000"),
    (
        "{{formatDate time \"HH:mm\" tz=\"America/Chicago\"}}",
        "08:30",
    ),
    ("{{formatDateRelative data.last time}}", "5 minutes ago"),
    ("{{formatDateRelative time data.last}}", "in 5 minutes"),
    ("{{format data.t}}", "21.456"),
    ("{{format 1234.5}}", "1,234.5"),
    ("{{format time}}", "01/15/2024 2:30:00 PM"),
    ("{{{format data.obj}}}", "{\"a\":1,\"b\":\"two\"}"),
    ("{{format \"hello\"}}", "hello"),
    ("{{format 0.123 \".0%\"}}", "12%"),
    ("{{format 42000000 \".2s\"}}", "42M"),
    ("{{format -3.14159 \"08.2f\"}}", "-0003.14"),
    ("{{format 2.5 \".0f\"}}", "3"),
    ("{{format 1234567 \"$,d\"}}", "$1,234,567"),
    (
        "{{format time \"dddd, MMMM Do YYYY, h:mm:ss a\"}}",
        "Monday, January 15th 2024, 2:30:00 pm",
    ),
    (
        "{{formatDate time \"LLLL\"}}",
        "Monday, January 15, 2024 2:30 PM",
    ),
    ("{{formatDate time}}", "01/15/2024 2:30:00 PM"),
    (
        "{{formatDate 0 \"YYYY-MM-DD HH:mm:ss\"}}",
        "1970-01-01 00:00:00",
    ),
    (
        "{{formatDate time \"ddd Do MMM, HH:mm z\" tz=\"Asia/Tokyo\"}}",
        "Mon 15th Jan, 23:30 JST",
    ),
    (
        "{{formatDate time \"YYYY-MM-DDTHH:mm:ssZ\" tz=globals.zone}}",
        "2024-01-15T14:30:00+00:00",
    ),
    ("{{formatDate \"nope\" \"YYYY\"}}", "Invalid date"),
    ("{{formatDate time \"[Week] W, [Q]Q\"}}", "Week 3, Q1"),
    // Collections.
    ("{{join (array 1 2 3) \"-\"}}", "1-2-3"),
    ("{{jsonEncode (obj a=1 b=\"z\")}}", "{\"a\":1,\"b\":\"z\"}"),
    (
        "{{jsonEncode (merge (obj a=1) (obj a=2 b=3))}}",
        "{\"a\":2,\"b\":3}",
    ),
    ("{{lookup data.tags 1}}", "y"),
    ("{{last data.tags}}", "y"),
    ("{{last \"abc\"}}", "c"),
    ("{{indexByKey data.arr \"b\"}}", "1"),
    ("{{indexByKey data.arr \"zz\"}}", "-1"),
    ("{{valueByKey data.arr \"b\"}}", "9"),
    ("{{valueByKey data.arr \"zz\"}}", ""),
    ("{{indexByKey data.users \"Bob\" \"name\"}}", "1"),
    ("{{valueByKey data.users \"Bob\" \"name\" \"age\"}}", "25"),
    ("{{lookup data.obj \"b\"}}", "two"),
    ("{{lookup data \"n\"}}", "4"),
    ("{{lookup data.missing \"n\"}}", ""),
    (
        "{{#each data.users}}{{lookup ../data.tags @index}}{{/each}}",
        "xy",
    ),
    (
        "{{jsonEncode (array data.n \"s\" data.none)}}",
        "[4,\"s\",null]",
    ),
    // GPS.
    (
        "{{formatGps \"39.1031,-84.512\" \"decimal\" 3}}",
        "39.103,-84.512",
    ),
    (
        "{{floor (gpsDistance \"39.10,-84.51\" \"39.11,-84.51\")}}",
        "1111",
    ),
    (
        "{{gpsIsPointInside \"5,5\" (array \"0,0\" \"0,10\" \"10,10\" \"10,0\")}}",
        "true",
    ),
    (
        "{{gpsIsPointInside \"50,5\" (array \"0,0\" \"0,10\" \"10,10\" \"10,0\")}}",
        "false",
    ),
    // Other helpers.
    ("{{template \"{{data.n}} units\"}}", "4 units"),
    ("{{template \"{{x}}!\" (obj x=\"<b>\")}}", "&lt;b&gt;!"),
    ("{{evalExpression \"2 + 3\"}}", "5"),
    ("{{evalExpression \"{{data.n}} * 2\"}}", "8"),
    ("{{evalExpression \"{{n}} > 3\" data}}", "true"),
    ("{{{toHtml data.doc}}}", "<p class=\"x\">a &lt; b</p>"),
    ("{{log \"ignored\"}}done", "done"),
];

/// (template, expected value of render_value)
fn passthrough_cases() -> Vec<(&'static str, JsValue)> {
    vec![
        ("{{data.tags}}", JsValue::from(json!(["x", "y"]))),
        ("{{{data.obj}}}", JsValue::from(json!({"a": 1, "b": "two"}))),
        ("{{data.n}}", JsValue::Number(4.0)),
        ("{{data.missing}}", JsValue::Undefined),
        ("{{data.none}}", JsValue::Null),
        ("{{jsonDecode data.s}}", JsValue::from(json!({"a": 7}))),
        ("{{add data.n 1}}", JsValue::Number(5.0)),
        (" {{data.n}}", JsValue::String(" 4".into())),
        ("{{data.n}}{{data.n}}", JsValue::String("44".into())),
        ("n={{data.tags}}", JsValue::String("n=x,y".into())),
    ]
}

/// (JSON template, parsed result)
fn json_cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            r#"{"id":"{{data.name}}","n":{{data.n}}}"#,
            json!({"id": "  Pump a  ", "n": 4}),
        ),
        (
            r#"{ {{#gt data.n 3}}"r":"hi"{{else}}"r":"lo"{{/gt}} }"#,
            json!({"r": "hi"}),
        ),
        (
            r#"{"tags":{{jsonEncode data.tags}}}"#,
            json!({"tags": ["x", "y"]}),
        ),
        (
            r#"{"obj":{{{jsonEncode data.obj}}}}"#,
            json!({"obj": {"a": 1, "b": "two"}}),
        ),
        ("{{data.n}}", json!(4)),
        ("{{data.bool}}", json!(true)),
        (
            "[{{#each data.list}}{{this}}{{#unless @last}},{{/unless}}{{/each}}]",
            json!([1, 2, 3]),
        ),
        (
            r#""{{data.html}}""#,
            json!(
                "&lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt; &#x60;x&#x60; &#x3D;"
            ),
        ),
        (
            r#"{"v":{{jsonEncode data.html}}}"#,
            json!({"v": "<b>\"Tom\" & 'Jerry'</b> `x` ="}),
        ),
        (
            "{\n  \"a\": {{data.t}},\n  \"b\": [{{data.list}}]\n}",
            json!({"a": 21.456, "b": [1, 2, 3]}),
        ),
        (r#"{"big":{{data.f}}}"#, json!({"big": 0.30000000000000004})),
        // Handlebars.js rejects `{{x}}}` (it reads `}}}`); flowd reads `{{x}}` then `}`.
        (r#"{"a":{{data.n}}}"#, json!({"a": 4})),
        (r#"{"a":{{{data.n}}}}"#, json!({"a": 4})),
    ]
}

/// (expression, expected value)
fn expression_cases() -> Vec<(&'static str, JsValue)> {
    let n = JsValue::Number;
    let s = |t: &str| JsValue::String(t.into());
    let b = JsValue::Bool;
    vec![
        // JavaScript coercions (spec/README.md pitfalls, WORKFLOW-SPEC §6.4).
        ("'5' + 1", s("51")),
        ("'5' * 2", n(10.0)),
        ("null + 1", n(1.0)),
        ("undefined + 1", n(f64::NAN)),
        ("{{data.emptyList}} == false", b(true)),
        ("0 == false", b(true)),
        ("0 === false", b(false)),
        ("42 > 'Hello world'", b(false)),
        ("42 < 'Hello world'", b(false)),
        ("pow(42, 0) === 1", b(true)),
        ("!!undefined", b(false)),
        ("!!{{data.obj}}", b(true)),
        ("'5' - 2", n(3.0)),
        ("'abc' * 1", n(f64::NAN)),
        ("true + true", n(2.0)),
        ("'3' + 4 + 5", s("345")),
        ("3 + 4 + '5'", s("75")),
        ("null == undefined", b(true)),
        ("null === undefined", b(false)),
        ("null == 0", b(false)),
        ("undefined == 0", b(false)),
        ("'1' == 1", b(true)),
        ("'' == 0", b(true)),
        ("'a' < 'b'", b(true)),
        ("'10' < '9'", b(true)),
        ("'10' < 9", b(false)),
        ("null >= 0", b(true)),
        ("{{data.list}} == '1,2,3'", b(true)),
        ("{{data.obj}} == '[object Object]'", b(true)),
        ("{{data.obj}} + ''", s("[object Object]")),
        ("{{data.none}} + 1", n(1.0)),
        ("{{data.falsy}} == 0", b(true)),
        ("{{data.tags}} + 1", s("x,y1")),
        // The benchmark expression and typical conditions.
        (
            "{{data.t}} > {{globals.limit}} && {{data.n}} % 2 === 0",
            b(true),
        ),
        ("{{data.name}} === '  Pump a  '", b(true)),
        ("{{data.name}} != ''", b(true)),
        ("{{data.missing}} === undefined", b(true)),
        ("{{data.missing}}", JsValue::Undefined),
        ("{{data.n}} >= 4 && {{data.n}} <= 4", b(true)),
        ("{{data.t}} * 2", n(42.912)),
        ("{{data.tags}}", JsValue::from(json!(["x", "y"]))),
        // Arithmetic and precedence.
        ("1 + 2 * 3", n(7.0)),
        ("(1 + 2) * 3", n(9.0)),
        ("10 % 4", n(2.0)),
        ("-7 % 3", n(-1.0)),
        ("7 / 2", n(3.5)),
        ("1 / 0", n(f64::INFINITY)),
        ("-1 / 0", n(f64::NEG_INFINITY)),
        ("0.1 + 0.2", n(0.30000000000000004)),
        ("2 ^ 3 ^ 2", n(512.0)),
        ("-2 ^ 2", n(-4.0)),
        ("(-2) ^ 2", n(4.0)),
        ("2 ^ -1", n(0.5)),
        ("2 * 3 ^ 2", n(18.0)),
        ("1 << 4", n(16.0)),
        ("-16 >> 2", n(-4.0)),
        ("1 + 1 << 2", n(8.0)),
        ("1e3 + .5", n(1000.5)),
        ("1.5e-3 * 1000", n(1.5)),
        ("0x1F", n(31.0)),
        ("- -3", n(3.0)),
        ("+'42'", n(42.0)),
        ("1 < 2 == true", b(true)),
        // Logic returns operands, as in JavaScript.
        ("0 || 'x'", s("x")),
        ("1 && 'y'", s("y")),
        ("'' && 1", s("")),
        ("{{data.missing}} || 'default'", s("default")),
        ("{{data.n}} || 'default'", n(4.0)),
        ("!0", b(true)),
        ("!'a'", b(false)),
        ("true && false || true", b(true)),
        ("false && {{decodeURIComponent '%'}}", b(false)),
        // Functions and constants.
        ("abs(-3)", n(3.0)),
        ("ceil(1.2)", n(2.0)),
        ("floor(-1.5)", n(-2.0)),
        ("round(2.5)", n(3.0)),
        ("round(-2.5)", n(-2.0)),
        ("trunc(-1.7)", n(-1.0)),
        ("sqrt(16)", n(4.0)),
        ("log(E)", n(1.0)),
        ("log10(1000)", n(3.0)),
        ("exp(0)", n(1.0)),
        ("sin(0)", n(0.0)),
        ("cos(PI)", n(-1.0)),
        ("atan2(1, 1) * 4", n(std::f64::consts::PI)),
        ("PI", n(std::f64::consts::PI)),
        ("min(3, 8)", n(3.0)),
        ("max(3, 8, 10)", n(10.0)),
        ("min({{data.missing}}, 1)", n(f64::NAN)),
        ("max('7', 2)", n(7.0)),
        ("length({{data.tags}})", n(2.0)),
        ("length('abc')", n(3.0)),
        ("length({{data.obj}})", n(2.0)),
        ("length({{data.n}})", JsValue::Undefined),
        ("includes({{data.tags}}, 'y')", b(true)),
        ("includes({{data.list}}, '1')", b(false)),
        ("includes('hello', 'ell')", b(true)),
        ("pow(2, 10)", n(1024.0)),
        ("sqrt(-1)", n(f64::NAN)),
        // Helpers inside braces, literals.
        ("{{add data.n 1}} === 5", b(true)),
        ("{{length data.tags}} > 1", b(true)),
        ("{{jsonDecode data.s}}", JsValue::from(json!({"a": 7}))),
        ("{{{data.name}}} === '  Pump a  '", b(true)),
        ("\"a\\\"b\"", s("a\"b")),
        ("'it\\'s'", s("it's")),
        ("'\\u0041\\x42\\n'", s("AB\n")),
        ("'😀' + \"\\uD83D\\uDE00\"", s("😀😀")),
        ("true", b(true)),
        ("null", JsValue::Null),
    ]
}

fn same(a: &JsValue, b: &JsValue) -> bool {
    match (a, b) {
        (JsValue::Number(x), JsValue::Number(y)) => {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() < 1e-12 * x.abs().max(1.0)
        }
        _ => a == b,
    }
}

#[test]
fn string_templates() {
    let p = payload();
    let mut failures = Vec::new();
    for (text, want) in TEMPLATES {
        match Template::compile(text).and_then(|t| t.render(&p)) {
            Ok(got) if got == *want => {}
            other => failures.push(format!("{text:?}\n   want {want:?}\n    got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn typed_passthrough() {
    let p = payload();
    for (text, want) in passthrough_cases() {
        let got = Template::compile(text).unwrap().render_value(&p).unwrap();
        assert!(same(&got, &want), "{text:?}: want {want:?}, got {got:?}");
    }
}

#[test]
fn json_templates() {
    let p = payload();
    for (text, want) in json_cases() {
        let got = JsonTemplate::compile(text).unwrap().render(&p);
        assert_eq!(got.as_ref().ok(), Some(&want), "{text:?}: {got:?}");
    }
    for bad in [
        r#"{"a": {{data.missing}} }"#,
        "{{data.name}}",
        "",
        r#"{"a":"{{data.n}}",}"#,
    ] {
        match JsonTemplate::compile(bad).unwrap().render(&p) {
            Err(TemplateError::InvalidJson(message)) => {
                assert!(message.contains("rendered text"), "{message}")
            }
            other => panic!("{bad:?} should be invalid JSON, got {other:?}"),
        }
    }
    let long = format!("{{{{data.n}}}} {}", "x".repeat(1000));
    let Err(TemplateError::InvalidJson(message)) = JsonTemplate::compile(&long).unwrap().render(&p)
    else {
        panic!("invalid");
    };
    assert!(message.len() < 400 && message.ends_with('…'), "{message}");
}

#[test]
fn expressions() {
    let p = payload();
    let mut failures = Vec::new();
    for (text, want) in expression_cases() {
        match Expression::compile(text).and_then(|e| e.evaluate(&p)) {
            Ok(got) if same(&got, &want) => {}
            other => failures.push(format!("{text:?}\n   want {want:?}\n    got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let e = Expression::compile("{{data.n}} > 3").unwrap();
    assert!(e.evaluate_truthy(&p).unwrap());
    assert_eq!(e.source(), "{{data.n}} > 3");
}

/// Templates that must not compile, and the kind of error.
#[test]
fn template_compile_errors() {
    type Check = fn(&TemplateError) -> bool;
    let unknown: Check = |e| matches!(e, TemplateError::UnknownHelper(_));
    let syntax: Check = |e| matches!(e, TemplateError::Syntax(_));
    let helper: Check = |e| matches!(e, TemplateError::Helper { .. });
    let cases: &[(&str, Check)] = &[
        ("{{nope data.x}}", unknown),
        ("{{#nope}}x{{/nope}}", unknown),
        ("{{add (nope 1) 2}}", unknown),
        ("{{colorMarker \"#fff\"}}", unknown),
        ("{{data.x 1}}", unknown),
        ("{{#if data.n}}x", syntax),
        ("{{#if data.n}}x{{/each}}", syntax),
        ("{{/if}}", syntax),
        ("{{else}}", syntax),
        ("{{data.n", syntax),
        ("{{> partial}}", syntax),
        ("{{#each data.tags as |t|}}{{t}}{{/each}}", syntax),
        ("{{#if}}x{{/if}}", syntax),
        ("{{#eq 1}}x{{/eq}}", syntax),
        ("{{#add 1 2}}x{{/add}}", syntax),
        ("{{working | json}}", syntax),
        ("{{add 1 \"x}}", syntax),
        ("{{add (add 1 2}}", syntax),
        ("{{a..b}}", syntax),
        ("{{data.}}", syntax),
        ("{{#if a}}{{else}}{{else}}{{/if}}", syntax),
        ("{{formatDate time \"HH\" tz=\"Mars/Base\"}}", helper),
        ("{{#match data.name \"(\"}}x{{/match}}", helper),
        ("{{template \"{{template \\\"x\\\"}}\"}}", helper),
        ("{{template \"{{evalExpression \\\"1\\\"}}\"}}", helper),
        ("{{evalExpression \"{{data.n}} +\"}}", helper),
        ("{{template \"{{nope 1}}\"}}", unknown),
    ];
    for (text, check) in cases {
        match Template::compile(text) {
            Err(e) if check(&e) => {}
            other => panic!("{text:?}: unexpected {other:?}"),
        }
    }
    // Messages point at the place.
    let Err(TemplateError::Syntax(message)) = Template::compile("ok\n  {{#if data.n}}x") else {
        panic!("syntax error expected");
    };
    assert!(message.contains("line 2, column 3"), "{message}");
}

#[test]
fn template_render_errors() {
    let p = payload();
    for text in [
        "{{decodeURIComponent \"%E0%A4%A\"}}",
        "{{format 5 \"YYYY\"}}",
        "{{formatDate time \"HH\" tz=data.name}}",
        "{{#match \"a\" (lookup (array \"(\") 0)}}x{{/match}}",
        "{{template data.s}}",
    ] {
        let t = Template::compile(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        match t.render(&p) {
            Err(TemplateError::Helper { .. }) => {}
            other if text == "{{template data.s}}" => {
                // A dynamic template is compiled when it is called; `{"a":7}` is plain text.
                assert_eq!(other, Ok("{\"a\":7}".into()));
            }
            other => panic!("{text:?}: expected a helper error, got {other:?}"),
        }
    }
}

#[test]
fn expression_compile_errors() {
    let cases: &[(&str, &str)] = &[
        ("data.x > 5", "{{data.x}}"),
        ("1 +", "ends"),
        ("(1 + 2", "expected )"),
        ("1 + 2)", "unbalanced"),
        ("abs(1, 2)", "takes 1 argument"),
        ("pow(2)", "takes 2 arguments"),
        ("min()", "at least 1"),
        ("foo(1)", "unknown name"),
        ("1 = 1", "=="),
        ("1 & 2", "&&"),
        ("", "empty"),
        ("   ", "empty"),
        ("'unclosed", "unclosed"),
        ("1 ? 2 : 3", "?:"),
        ("abs", "call it"),
        ("1 2", "operator"),
        ("3in", "invalid number"),
        ("1 + * 2", "value"),
    ];
    for (text, fragment) in cases {
        match Expression::compile(text) {
            Err(e @ ExpressionError::Syntax { .. }) => {
                let message = e.to_string();
                assert!(message.contains(fragment), "{text:?}: {message}");
            }
            other => panic!("{text:?}: expected a syntax error, got {other:?}"),
        }
    }
    match Expression::compile("1 + * 2") {
        Err(ExpressionError::Syntax { column, .. }) => assert_eq!(column, 5),
        other => panic!("{other:?}"),
    }
    for text in ["{{#if x}}1{{/if}}", "{{nope 1}} > 2", "1 + {{data.n"] {
        match Expression::compile(text) {
            Err(ExpressionError::Template { .. }) => {}
            other => panic!("{text:?}: expected a template error, got {other:?}"),
        }
    }
    match Expression::compile("1 + {{nope 2}}") {
        Err(ExpressionError::Template { column, error }) => {
            assert_eq!(column, 5);
            assert_eq!(error, TemplateError::UnknownHelper("nope".into()));
        }
        other => panic!("{other:?}"),
    }
    // A helper failing while evaluating.
    let e = Expression::compile("{{decodeURIComponent data.html}} == 1").unwrap();
    assert!(e.evaluate(&json!({"data": {"html": "%"}})).is_err());
}

#[test]
fn current_date_time() {
    let p = payload();
    let year = chrono::Utc::now().format("%Y").to_string();
    let got = Template::compile("{{currentDateTime \"YYYY\"}}")
        .unwrap()
        .render(&p)
        .unwrap();
    assert_eq!(got, year);
    let default = Template::compile("{{currentDateTime tz=\"Europe/Paris\"}}")
        .unwrap()
        .render(&p)
        .unwrap();
    assert!(
        default.ends_with(" AM") || default.ends_with(" PM"),
        "{default}"
    );
}

#[test]
fn helper_names_are_all_callable() {
    // Every catalogued helper compiles in call position (none is misspelt in the table).
    for name in flowd_engine::template::HELPER_NAMES {
        Template::compile(&format!("{{{{{name} 1 2}}}}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(flowd_engine::template::HELPER_NAMES.len() >= 45);
}

#[test]
fn the_tables_are_big_enough() {
    let total = TEMPLATES.len()
        + passthrough_cases().len()
        + json_cases().len()
        + expression_cases().len()
        + 27
        + 18;
    assert!(total >= 150, "{total}");
}

/// Not a benchmark with limits: prints rates for the record (`--nocapture`; use `--release`
/// for meaningful numbers).
#[test]
fn rates() {
    let p = json!({"data": {"t": 25.5, "n": 4, "name": "pump"}, "globals": {"limit": 20}});
    let template = Template::compile("{{data.name}}: {{data.t}} °C (n={{data.n}})").unwrap();
    let expression =
        Expression::compile("{{data.t}} > {{globals.limit}} && {{data.n}} % 2 === 0").unwrap();
    let budget = Duration::from_millis(300);
    let rate = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut count = 0u64;
        while start.elapsed() < budget {
            for _ in 0..1000 {
                f();
            }
            count += 1000;
        }
        count as f64 / start.elapsed().as_secs_f64()
    };
    let renders = rate(&mut || {
        std::hint::black_box(template.render(std::hint::black_box(&p)).unwrap());
    });
    let evals = rate(&mut || {
        std::hint::black_box(expression.evaluate(std::hint::black_box(&p)).unwrap());
    });
    assert_eq!(template.render(&p).unwrap(), "pump: 25.5 °C (n=4)");
    assert_eq!(expression.evaluate(&p).unwrap(), JsValue::Bool(true));
    println!("3-placeholder template: {renders:.0} renders/s; expression: {evals:.0} evals/s");
}

#[test]
fn hostile_input_is_refused_not_a_stack_overflow() {
    let deep_blocks = "{{#if a}}".repeat(5000) + &"{{/if}}".repeat(5000);
    assert!(Template::compile(&deep_blocks).is_err());
    let deep_sub = "{{add ".to_owned() + &"(add 1 ".repeat(5000) + "1" + &")".repeat(5000) + "}}";
    assert!(Template::compile(&deep_sub).is_err());
    let else_chain = "{{#if a}}".to_owned() + &"{{else if b}}".repeat(50) + "{{/if}}";
    assert!(Template::compile(&else_chain).is_ok());
    for text in [
        "(".repeat(5000) + "1" + &")".repeat(5000),
        "-".repeat(5000) + "1",
        "2^".repeat(3000) + "2",
        "abs(".repeat(3000) + "1" + &")".repeat(3000),
        "1".to_owned() + &"+1".repeat(600),
        "1".to_owned() + &"+1".repeat(5000),
    ] {
        assert!(Expression::compile(&text).is_err(), "{}", &text[..20]);
    }
    assert!(Expression::compile(&("1".to_owned() + &"+1".repeat(200))).is_ok());
}

#[test]
fn compiled_forms_are_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<JsonTemplate>();
    assert_send_sync::<Expression>();
}
