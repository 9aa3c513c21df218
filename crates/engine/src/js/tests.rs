use super::*;
use serde_json::json;
use std::time::Instant;

fn limits(time_ms: u64) -> JsLimits {
    JsLimits {
        time: Duration::from_millis(time_ms),
        memory_bytes: 32 * 1024 * 1024,
        max_stack_bytes: 512 * 1024,
    }
}

fn sandbox() -> JsSandbox {
    JsSandbox::new(1, limits(2_000))
}

async fn payload_of(
    sandbox: &JsSandbox,
    script: &str,
    payload: serde_json::Value,
) -> serde_json::Value {
    match sandbox.run(script, payload).await {
        Ok(outcome) => outcome.payload,
        Err(e) => panic!("script failed: {e:?}\n{script}"),
    }
}

fn script_error(result: Result<JsOutcome, JsError>) -> (String, String) {
    match result {
        Err(JsError::Script { name, message }) => (name, message),
        other => panic!("expected a script error, got {other:?}"),
    }
}

#[tokio::test]
async fn mutates_and_reassigns_the_payload() {
    let js = sandbox();
    let input =
        json!({ "time": "2024-05-01T12:00:00.000Z", "data": { "x": 21, "vals": [1, 2, 3] } });
    let out = payload_of(
        &js,
        "payload.data.x = payload.data.x * 2;\n\
         payload.working = { avg: payload.data.vals.reduce((a, b) => a + b, 0) / payload.data.vals.length };\n\
         payload.timeType = typeof payload.time;",
        input.clone(),
    )
    .await;
    assert_eq!(
        out,
        json!({ "time": "2024-05-01T12:00:00.000Z", "data": { "x": 42, "vals": [1, 2, 3] },
                "working": { "avg": 2 }, "timeType": "string" })
    );

    let out = payload_of(
        &js,
        "payload = { replaced: payload.data.x };",
        input.clone(),
    )
    .await;
    assert_eq!(out, json!({ "replaced": 21 }));
    let out = payload_of(&js, "var payload = { shadowed: true };", input.clone()).await;
    assert_eq!(out, input, "a `var payload` inside the body is local to it");
}

#[tokio::test]
async fn top_level_return_replaces_the_payload() {
    let js = sandbox();
    let input = json!({ "data": { "x": 1 } });
    assert_eq!(
        payload_of(&js, "return { only: payload.data.x + 1 };", input.clone()).await,
        json!({ "only": 2 })
    );
    assert_eq!(
        payload_of(
            &js,
            "if (payload.data.x) return 5;\npayload.no = 1;",
            input.clone()
        )
        .await,
        json!(5)
    );
    assert_eq!(
        payload_of(&js, "return null;", input.clone()).await,
        json!(null)
    );
    assert_eq!(
        payload_of(&js, "payload.a = 1; return;", input.clone()).await,
        json!({ "data": { "x": 1 }, "a": 1 })
    );
    assert_eq!(
        payload_of(&js, "payload.a = 1; return undefined;", input.clone()).await,
        json!({ "data": { "x": 1 }, "a": 1 })
    );
    assert_eq!(
        payload_of(&js, "payload = undefined;", input.clone()).await,
        json!(null)
    );
    assert_eq!(payload_of(&js, "", input.clone()).await, input);
    assert_eq!(
        payload_of(&js, "payload.c = 1 // a trailing comment", json!({})).await,
        json!({ "c": 1 })
    );
    // A leading directive applies to the script, as it would to a function body.
    let (name, _) = script_error(js.run("'use strict';\nundeclared = 1;", json!({})).await);
    assert_eq!(name, "ReferenceError");
    assert_eq!(
        payload_of(&js, "undeclared = 1; payload.ok = undeclared;", json!({})).await,
        json!({ "ok": 1 })
    );
}

#[tokio::test]
async fn await_and_promises_settle_before_the_result_is_read() {
    let js = sandbox();
    let out = payload_of(
        &js,
        "payload.a = await Promise.resolve(5);\n\
         payload.b = await new Promise(resolve => resolve('later'));\n\
         Promise.resolve().then(() => { payload.c = 'job'; });",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({ "a": 5, "b": "later", "c": "job" }));
    assert_eq!(
        payload_of(&js, "return Promise.resolve({ p: 1 });", json!({})).await,
        json!({ "p": 1 })
    );

    let (name, message) = script_error(
        js.run("await Promise.reject(new TypeError('nope'));", json!({}))
            .await,
    );
    assert_eq!((name.as_str(), message.as_str()), ("TypeError", "nope"));
    let (name, message) = script_error(js.run("await new Promise(() => {});", json!({})).await);
    assert_eq!(name, "Error");
    assert!(message.contains("never settles"), "{message}");
}

#[tokio::test]
async fn console_lines_are_formatted_like_node() {
    let js = sandbox();
    let out = js
        .run(
            r#"
            console.log('text', 1, -0, true, null, undefined, { a: 1, 'b-c': 'it\'s', d: [1, 'x', { e: { f: { g: 1 } } }] });
            console.info([]);
            console.warn({});
            console.error(new Map([['k', 1]]), new Set([1, 2]), [1, , 3]);
            console.log('%s is %d years and %i%% sure', 'Bob', 42.5, 99.9, 'extra');
            console.log(function named() {}, () => 1, class K {}, Symbol('s'), 10n);
            console.log(new Date(0), /re/g, [undefined, null], { nested: { deeper: { deepest: { x: 1 } } } });
            const o = { name: 'loop' }; o.self = o; console.log(o);
            console.debug({ get g() { return 1; } });
            console.log(new Error('bad').message);
            console.log();
            "#,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        out.logs,
        vec![
            "text 1 -0 true null undefined { a: 1, 'b-c': \"it's\", d: [ 1, 'x', { e: [Object] } ] }",
            "[]",
            "{}",
            "Map(1) { 'k' => 1 } Set(2) { 1, 2 } [ 1, <1 empty item>, 3 ]",
            "Bob is 42.5 years and 99% sure extra",
            "[Function: named] [Function (anonymous)] [class K] Symbol(s) 10n",
            "1970-01-01T00:00:00.000Z /re/g [ undefined, null ] { nested: { deeper: { deepest: [Object] } } }",
            "{ name: 'loop', self: [Circular *1] }",
            "{ g: [Getter] }",
            "bad",
            "",
        ]
    );
    assert_eq!(out.payload, json!({}));

    // Stack traces give the script's own line numbers.
    let out = js
        .run(
            "const e = new Error('where');\nconsole.log(e.stack);",
            json!({}),
        )
        .await
        .unwrap();
    assert!(
        out.logs[0].contains("function-node.js:1:"),
        "{}",
        out.logs[0]
    );
}

#[tokio::test]
async fn console_is_capped_per_run_and_per_line() {
    let js = sandbox();
    let out = js
        .run(
            "for (let i = 0; i < 150; i++) console.log('line', i);\npayload.done = true;",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(out.logs.len(), MAX_LOG_LINES);
    assert_eq!(out.logs[0], "line 0");
    assert_eq!(out.logs[99], "line 99");
    assert_eq!(out.payload, json!({ "done": true }));

    let out = js
        .run("console.log('é'.repeat(20000));", json!({}))
        .await
        .unwrap();
    assert_eq!(out.logs.len(), 1);
    assert!(out.logs[0].len() <= MAX_LOG_LINE_BYTES);
    assert!(out.logs[0].len() > MAX_LOG_LINE_BYTES - 4);
    assert!(out.logs[0].chars().all(|c| c == 'é'));

    let out = js.run("const log = console.log; log('detached'); console = { log() {} }; console.log('gone');", json!({})).await.unwrap();
    assert_eq!(out.logs, vec!["detached"]);
}

#[tokio::test]
async fn thrown_values_keep_their_names_and_messages() {
    let js = sandbox();
    let cases: &[(&str, &str, &str)] = &[
        ("throw new Error('boom');", "Error", "boom"),
        ("null.x;", "TypeError", "cannot read property 'x' of null"),
        ("undefinedFunction();", "ReferenceError", "undefinedFunction is not defined"),
        ("throw new RangeError('out');", "RangeError", "out"),
        ("throw 'just a string';", "Error", "just a string"),
        ("throw { code: 7 };", "Error", "[object Object]"),
        ("throw 42;", "Error", "42"),
        ("throw null;", "Error", "null"),
        (
            "class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }\nthrow new MyError('custom');",
            "MyError",
            "custom",
        ),
    ];
    for (script, name, message) in cases {
        let (got_name, got_message) = script_error(js.run(script, json!({})).await);
        assert_eq!(got_name, *name, "{script}");
        assert_eq!(
            got_message.to_lowercase(),
            message.to_lowercase(),
            "{script}"
        );
    }
    let (name, _) = script_error(js.run("payload.x = ;", json!({})).await);
    assert_eq!(name, "SyntaxError");
}

#[tokio::test]
async fn an_endless_loop_times_out_and_the_worker_goes_on() {
    let js = JsSandbox::new(1, limits(200));
    let started = Instant::now();
    let result = js.run("while (true) {}", json!({})).await;
    let took = started.elapsed();
    assert_eq!(result, Err(JsError::Timeout));
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_millis(1_200),
        "stopped only after {took:?}"
    );

    // Catching does not help: the interrupt cannot be caught.
    let result = js
        .run(
            "try { for (;;) {} } catch (e) { payload.caught = true; }",
            json!({}),
        )
        .await;
    assert_eq!(result, Err(JsError::Timeout));
    // Neither does an endless chain of promise jobs.
    let result = js
        .run(
            "(function again() { Promise.resolve().then(again); })();",
            json!({}),
        )
        .await;
    assert_eq!(result, Err(JsError::Timeout));

    assert_eq!(
        payload_of(&js, "payload.ok = true;", json!({})).await,
        json!({ "ok": true })
    );
}

#[tokio::test]
async fn an_allocation_bomb_runs_out_of_memory_and_the_worker_recovers() {
    let js = sandbox();
    let result = js
        .run(
            "const keep = []; while (true) keep.push(new Array(100000).fill(1.5));",
            json!({}),
        )
        .await;
    assert_eq!(result, Err(JsError::OutOfMemory));
    let result = js
        .run("let s = 'x'; while (true) s = s + s;", json!({}))
        .await;
    assert!(
        matches!(
            result,
            Err(JsError::OutOfMemory) | Err(JsError::Script { .. })
        ),
        "{result:?}"
    );
    assert_eq!(
        payload_of(&js, "payload.ok = [1, 2, 3].length;", json!({})).await,
        json!({ "ok": 3 })
    );
    // A script that catches the failure goes on with its memory back.
    let out = payload_of(
        &js,
        "try { const keep = []; while (true) keep.push(new Array(100000).fill(1.5)); } catch (e) { payload.caught = e.message; }",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({ "caught": "out of memory" }));
}

#[tokio::test]
async fn deep_recursion_is_a_script_error() {
    let js = sandbox();
    let (name, message) = script_error(
        js.run("function f(n) { return f(n + 1) + 1; }\nf(0);", json!({}))
            .await,
    );
    assert!(
        name == "RangeError" || name == "InternalError",
        "{name}: {message}"
    );
    let nested = format!("return {}1{};", "[".repeat(100_000), "]".repeat(100_000));
    let result = js.run(&nested, json!({})).await;
    assert!(matches!(result, Err(JsError::Script { .. })), "{result:?}");
    assert_eq!(
        payload_of(&js, "payload.ok = true;", json!({})).await,
        json!({ "ok": true })
    );
}

#[tokio::test]
async fn no_host_access() {
    let js = sandbox();
    let out = payload_of(
        &js,
        "payload.types = [typeof require, typeof process, typeof fetch, typeof setTimeout, typeof Buffer, \
         typeof std, typeof os, typeof module, typeof exports, typeof XMLHttpRequest, typeof WebSocket];",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({ "types": vec!["undefined"; 11] }));
    let (name, _) = script_error(js.run("require('fs');", json!({})).await);
    assert_eq!(name, "ReferenceError");
    let (name, _) = script_error(js.run("process.exit(1);", json!({})).await);
    assert_eq!(name, "ReferenceError");
    let (name, _) = script_error(js.run("await import('os');", json!({})).await);
    assert!(!name.is_empty());
}

#[tokio::test]
async fn nothing_leaks_into_the_next_run() {
    let js = sandbox(); // one worker: both runs share its runtime
    payload_of(
        &js,
        "Object.prototype.polluted = 'yes';\n\
         Array.prototype.push = function () { return 'hijacked'; };\n\
         JSON.stringify = () => '\"hijacked\"';\n\
         globalThis.leftover = 42; implicitGlobal = 1;\n\
         Object.defineProperty(globalThis, 'stuck', { value: 1, configurable: false });\n\
         Error.prepareStackTrace = () => 'hijacked'; Error.stackTraceLimit = 0;\n\
         Object.freeze(Object.prototype);",
        json!({}),
    )
    .await;
    let out = payload_of(
        &js,
        "const a = []; a.push(1);\n\
         payload.seen = [typeof ({}).polluted, typeof leftover, typeof implicitGlobal, typeof stuck, a.length,\n\
           typeof new Error('x').stack, Object.isFrozen(Object.prototype)];",
        json!({}),
    )
    .await;
    assert_eq!(
        out,
        json!({ "seen": ["undefined", "undefined", "undefined", "undefined", 1, "string", false] })
    );
}

#[tokio::test]
async fn a_looping_run_does_not_hold_up_a_quick_one() {
    let js = JsSandbox::new(2, limits(3_000));
    let looping = js.run("while (true) {}", json!({}));
    let quick = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let out = js.run("payload.quick = true;", json!({})).await;
        (out, started.elapsed())
    };
    let (looped, (quick, took)) = tokio::join!(looping, quick);
    assert_eq!(looped, Err(JsError::Timeout));
    assert_eq!(quick.unwrap().payload, json!({ "quick": true }));
    assert!(
        took < Duration::from_millis(1_500),
        "the quick run waited {took:?}"
    );
}

#[tokio::test]
async fn values_json_cannot_hold() {
    let js = sandbox();
    let out = payload_of(
        &js,
        "payload.nan = NaN; payload.inf = -Infinity; payload.undef = undefined; payload.fn = function () {};\n\
         payload.date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)); payload.bad = new Date(NaN);\n\
         payload.list = [undefined, NaN, function () {}, 1.5]; payload.big = 1e21; payload.neg0 = -0;\n\
         payload.sym = Symbol('s'); payload.nested = { keep: 1, drop: undefined };",
        json!({ "time": "2024-01-01T00:00:00.000Z" }),
    )
    .await;
    assert_eq!(
        out,
        json!({
            "time": "2024-01-01T00:00:00.000Z",
            "nan": null, "inf": null,
            "date": "2024-01-02T03:04:05.006Z", "bad": null,
            "list": [null, null, null, 1.5], "big": 1e21, "neg0": 0,
            "nested": { "keep": 1 }
        })
    );
    assert_eq!(
        payload_of(&js, "return () => 1;", json!({})).await,
        json!(null)
    );
    let (name, _) = script_error(js.run("payload.self = payload;", json!({})).await);
    assert_eq!(name, "TypeError");
    let (name, _) = script_error(js.run("payload.n = 10n;", json!({})).await);
    assert_eq!(name, "TypeError");
}

#[tokio::test]
async fn a_run_nobody_waits_for_stops_and_frees_its_worker() {
    let js = JsSandbox::new(1, limits(10_000));
    // The caller gives up on an endless script; the worker notices and stops it long before its
    // ten seconds are up, so the next run is answered quickly.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        js.run("while (true) {}", json!({})),
    )
    .await;
    assert!(gave_up.is_err());
    let started = Instant::now();
    assert_eq!(
        payload_of(&js, "payload.after = 1;", json!({})).await,
        json!({ "after": 1 })
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
}

/// A webhook's payload: about ten fields.
fn webhook_payload() -> serde_json::Value {
    json!({
        "time": "2024-05-01T12:00:00.000Z",
        "data": {
            "method": "post", "path": "/hook", "headers": { "content-type": "application/json" },
            "query": {}, "body": { "temperature": 21.5, "device": "abc" }, "n": 1
        },
        "applicationId": "5f0c0c0c0c0c0c0c0c0c0c0c", "applicationName": "app",
        "flowId": "5f0c0c0c0c0c0c0c0c0c0c0d", "flowName": "flow", "flowVersion": "develop",
        "triggerId": "5f0c0c0c0c0c0c0c0c0c0c0e", "triggerType": "webhook",
        "relayId": "5f0c0c0c0c0c0c0c0c0c0c0f", "relayType": "public", "globals": {}
    })
}

/// Function node executions per second on one worker, driven from one tokio task with 16 runs in
/// flight, five rounds of two seconds, median printed. Also: the same runs called on a worker
/// directly (no queue, no thread handoff), and the handoff alone (an empty job through the same
/// kind of queue and reply channel to a thread that answers at once). Run it in release:
/// `cargo test -p flowd-engine --release --lib -- --ignored js_throughput --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore]
async fn js_throughput() {
    use futures::stream::{FuturesUnordered, StreamExt};
    const SCRIPT: &str = "payload.data.n = (payload.data.n||0)+1; return payload;";
    const ROUND: Duration = Duration::from_secs(2);
    const IN_FLIGHT: usize = 16;
    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
    let payload = webhook_payload();
    let js = JsSandbox::new(1, JsLimits::default());
    let out = payload_of(&js, SCRIPT, payload.clone()).await;
    assert_eq!(out["data"]["n"], json!(2));

    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut runs = 0u32;
        let mut flying = FuturesUnordered::new();
        while started.elapsed() < ROUND {
            while flying.len() < IN_FLIGHT {
                flying.push(js.run(SCRIPT, &payload));
            }
            if let Some(result) = flying.next().await {
                result.unwrap();
                runs += 1;
            }
        }
        while let Some(result) = flying.next().await {
            result.unwrap();
            runs += 1;
        }
        rounds.push(f64::from(runs) / started.elapsed().as_secs_f64());
    }
    let through_sandbox = median(rounds.clone());

    let direct = {
        let payload_json = serde_json::to_string(&payload).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut worker = worker::Worker::new(JsLimits::default()).unwrap();
            println!(
                "js_throughput: a reset copies {} bytes",
                worker.snapshot_bytes()
            );
            let mut rounds = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let mut runs = 0u32;
                while started.elapsed() < ROUND / 2 {
                    worker
                        .run(SCRIPT, &payload_json, Box::new(|| false))
                        .unwrap();
                    assert!(worker.prepare());
                    runs += 1;
                }
                rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(runs));
            }
            median(rounds)
        })
        .await
        .unwrap()
    };

    // The handoff alone: jobs carrying a payload through a bounded queue to a thread that answers
    // each on its oneshot right away.
    let handoff = {
        type Echo = (serde_json::Value, oneshot::Sender<serde_json::Value>);
        let (queue, mut receiver) = mpsc::channel::<Echo>(64);
        let thread = std::thread::spawn(move || {
            while let Some((payload, reply)) = receiver.blocking_recv() {
                let _ = reply.send(payload);
            }
        });
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let mut runs = 0u32;
            let mut flying = FuturesUnordered::new();
            while started.elapsed() < ROUND / 2 {
                while flying.len() < IN_FLIGHT {
                    let queue = queue.clone();
                    let payload = payload.clone();
                    flying.push(async move {
                        let (reply, answer) = oneshot::channel();
                        queue.send((payload, reply)).await.unwrap();
                        answer.await.unwrap()
                    });
                }
                if flying.next().await.is_some() {
                    runs += 1;
                }
            }
            while flying.next().await.is_some() {}
            rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(runs.max(1)));
        }
        drop(queue);
        thread.join().unwrap();
        median(rounds)
    };

    println!(
        "js_throughput: {through_sandbox:.0} executions/s (median of {rounds:.0?}), one worker, \
         {IN_FLIGHT} in flight; on the worker directly {direct:.1} µs a run; \
         an empty job's handoff {handoff:.1} µs"
    );
}

#[tokio::test]
async fn host_access_attempts_fail_as_script_errors() {
    let js = sandbox();
    let cases: &[(&str, &str)] = &[
        ("await fetch('http://127.0.0.1:1/');", "ReferenceError"),
        ("new XMLHttpRequest();", "ReferenceError"),
        ("std.loadFile('/etc/passwd');", "ReferenceError"),
        ("os.open('/etc/passwd', 0);", "ReferenceError"),
        ("process.env.HOME;", "ReferenceError"),
        ("setTimeout(() => {}, 0);", "ReferenceError"),
        ("Buffer.from('x');", "ReferenceError"),
    ];
    for (script, name) in cases {
        let (got, _) = script_error(js.run(script, json!({})).await);
        assert_eq!(got, *name, "{script}");
    }
    // Modules cannot be loaded at all: no loader is installed, neither for QuickJS's own `std`
    // and `os` nor for files.
    for specifier in [
        "std",
        "os",
        "qjs:std",
        "qjs:os",
        "/etc/passwd",
        "./function-node.js",
    ] {
        let script =
            format!("const m = await import('{specifier}'); payload.loaded = Object.keys(m);");
        let result = js.run(&script, json!({})).await;
        assert!(
            matches!(result, Err(JsError::Script { .. })),
            "import('{specifier}') gave {result:?}"
        );
    }
    let result = js.run("import * as std from 'std';", json!({})).await;
    assert!(
        matches!(result, Err(JsError::Script { ref name, .. }) if name == "SyntaxError"),
        "{result:?}"
    );
    assert_eq!(
        payload_of(&js, "payload.ok = true;", json!({})).await,
        json!({ "ok": true })
    );
}

#[tokio::test]
async fn non_error_throws_and_rejections_are_script_errors() {
    let js = sandbox();
    let cases: &[(&str, &str, &str)] = &[
        ("throw undefined;", "Error", "undefined"),
        ("throw Symbol('s');", "Error", "Symbol(s)"),
        ("throw Symbol();", "Error", "Symbol()"),
        ("throw [1, 2];", "Error", "1,2"),
        (
            "throw { toString() { return 'custom text'; } };",
            "Error",
            "custom text",
        ),
        (
            "await Promise.reject('rejected text');",
            "Error",
            "rejected text",
        ),
        ("return Promise.reject(42);", "Error", "42"),
        ("await Promise.reject(null);", "Error", "null"),
        ("await Promise.reject(undefined);", "Error", "undefined"),
        (
            "await Promise.reject({ code: 7 });",
            "Error",
            "[object Object]",
        ),
        ("return Promise.reject(new URIError('u'));", "URIError", "u"),
        (
            "await new Promise((_, reject) => reject('later'));",
            "Error",
            "later",
        ),
        (
            "await (async () => { throw 'inner'; })();",
            "Error",
            "inner",
        ),
    ];
    for (script, name, message) in cases {
        let (got_name, got_message) = script_error(js.run(script, json!({})).await);
        assert_eq!(
            (got_name.as_str(), got_message.as_str()),
            (*name, *message),
            "{script}"
        );
    }
    // A value whose conversion to text throws (or never ends) still fails the run.
    let (name, message) = script_error(
        js.run(
            "throw { toString() { throw new Error('nested'); } };",
            json!({}),
        )
        .await,
    );
    assert_eq!((name.as_str(), message.as_str()), ("Error", "object"));
    let looping = JsSandbox::new(1, limits(200));
    let result = looping
        .run("throw { toString() { for (;;) {} } };", json!({}))
        .await;
    assert_eq!(result, Err(JsError::Timeout));
    assert_eq!(
        payload_of(&js, "payload.ok = true;", json!({})).await,
        json!({ "ok": true })
    );
}

#[tokio::test]
async fn shared_objects_and_hidden_intrinsics_are_restored_for_the_next_run() {
    let js = sandbox(); // one worker: every run goes back to the same snapshot
                        // The run fails at its last line (`undefined` cannot be redefined), after polluting.
    let (name, _) = script_error(
        js.run(
            "Function.prototype.call = null; String.prototype.trim = () => 'hijacked';\n\
         Promise.prototype.then = function () { return 'hijacked'; };\n\
         Object.getPrototypeOf(function* () {}).prototype.next = null;\n\
         Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())).polluted = 1;\n\
         Object.getPrototypeOf(async function () {}).polluted = 1;\n\
         delete globalThis.JSON; globalThis.Math = null; Symbol.prototype.polluted = 1;\n\
         Object.setPrototypeOf(Object.getPrototypeOf([]), null);\n\
         Object.defineProperty(globalThis, 'undefined', { get() { return 1; } });",
            json!({}),
        )
        .await,
    );
    assert_eq!(name, "TypeError");
    let out = payload_of(
        &js,
        "function* g() { yield 1; }\n\
         payload.seen = [typeof Function.prototype.call, ' x '.trim(), g().next().value,\n\
           typeof [][Symbol.iterator]().polluted, typeof (async function () {}).polluted,\n\
           typeof JSON, typeof Math, Object.getPrototypeOf([]) === Array.prototype,\n\
           Object.getPrototypeOf(Array.prototype) === Object.prototype, typeof undefined];\n\
         payload.awaited = await Promise.resolve(3);",
        json!({}),
    )
    .await;
    assert_eq!(
        out,
        json!({ "seen": ["function", "x", 1, "undefined", "undefined", "object", "object", true, true, "undefined"],
                "awaited": 3 })
    );
}

/// The console and `Math.random` are Rust functions made once per worker; a run that drops every
/// reference to them (and collects) must not free what later runs use.
#[tokio::test]
async fn the_console_and_math_random_survive_a_run_that_drops_them() {
    let js = sandbox();
    for _ in 0..3 {
        payload_of(
            &js,
            "console = null; delete globalThis.console; Math.random = null; delete Math.random;\n\
             for (let i = 0; i < 2000; i++) { const o = {}; o.self = o; }",
            json!({}),
        )
        .await;
        let out = js
            .run(
                "console.log('still here'); payload.r = typeof Math.random();",
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(out.logs, vec!["still here"]);
        assert_eq!(out.payload, json!({ "r": "number" }));
    }
}

/// Every run starts from the same snapshot, so a generator kept in it would repeat itself.
#[tokio::test]
async fn math_random_does_not_repeat_across_runs() {
    let js = sandbox();
    let script = "payload.r = [Math.random(), Math.random()];";
    let first = payload_of(&js, script, json!({})).await;
    let second = payload_of(&js, script, json!({})).await;
    assert_ne!(first, second);
    let r = first["r"][0].as_f64().unwrap();
    assert!((0.0..1.0).contains(&r), "{r}");
    let out = payload_of(
        &js,
        "payload.d = Object.getOwnPropertyDescriptor(Math, 'random');\n\
         payload.d = [payload.d.writable, payload.d.enumerable, payload.d.configurable, Math.random.name, Math.random.length];",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({ "d": [true, false, true, "random", 0] }));
}

/// A run that touched a lot of memory gives its pages back to the system (that the process's
/// resident memory drops is checked end to end, in `crates/cli/tests/containment.rs`); a small
/// run is undone by copying the snapshot back; runs after either go on normally.
#[test]
#[cfg(target_os = "linux")]
fn memory_a_run_touched_is_given_back() {
    let limits = JsLimits {
        memory_bytes: 128 * 1024 * 1024,
        ..limits(5_000)
    };
    let mut worker = worker::Worker::new(limits).unwrap();
    worker
        .run("payload.a = 1;", "{}", Box::new(|| false))
        .unwrap();
    assert!(worker.prepare(), "a small run is undone in place");
    let out = worker
        .run(
            "const keep = []; for (let i = 0; i < 40; i++) keep.push(new Uint8Array(1 << 20).fill(i));\n\
             payload.n = keep.length;",
            "{}",
            Box::new(|| false),
        )
        .unwrap();
    assert_eq!(out.payload, json!({ "n": 40 }));
    assert!(worker.prepare(), "the pages are given back in place");
    // Later runs reuse the region (the given-back pages read as zeros) and go on.
    for _ in 0..3 {
        let out = worker
            .run(
                "const keep = []; for (let i = 0; i < 40; i++) keep.push(new Uint8Array(1 << 20).fill(i));\n\
                 payload.n = keep.length + keep[39][100];",
                "{}",
                Box::new(|| false),
            )
            .unwrap();
        assert_eq!(out.payload, json!({ "n": 40 + 39 }));
        assert!(worker.prepare());
        let out = worker
            .run(
                "payload.ok = [1, 2].map(x => x * 2);\n\
                 payload.zero = new Uint8Array(1 << 16).every(b => b === 0);",
                "{}",
                Box::new(|| false),
            )
            .unwrap();
        assert_eq!(out.payload, json!({ "ok": [2, 4], "zero": true }));
        assert!(worker.prepare());
    }
}

/// Runs `script` on `worker` and resets it, as the pool does.
fn run_on(worker: &mut worker::Worker, script: &str) -> Result<JsOutcome, JsError> {
    let result = worker.run(script, "{}", Box::new(|| false));
    assert!(worker.prepare());
    result
}

/// A script that ran before runs from its compiled form, which behaves exactly as compiling it
/// again: same results, same stack traces (file, lines), same source text, sloppy mode, and the
/// features whose compiled form holds more than code (templates, regular expressions, BigInts,
/// classes with private fields, generators).
#[test]
fn a_script_compiled_before_runs_the_same() {
    let mut worker = worker::Worker::new(limits(2_000)).unwrap();
    let script = "const tag = (s, ...v) => s.raw.join('|') + Object.isFrozen(s) + v.join();\n\
         class K { #p = 2n ** 70n; static s = /a(b+)/g; get p() { return String(this.#p); } }\n\
         function* g() { yield* [1, 2]; }\n\
         sloppyGlobal = 1;\n\
         const e = new Error('where');\n\
         payload.r = [tag`a\\n${1}b`, new K().p, 'xabbb'.replace(K.s, '$1'), [...g()], 0.1 + 0.2,\n\
           e.stack.split('\\n')[0].trim(), e.stack.split('\\n').length,\n\
           arguments.callee.toString().length, arguments.callee.toString().slice(0, 40)];\n\
         payload.f = (function () { return this === globalThis; })();";
    let first = run_on(&mut worker, script).unwrap();
    assert_eq!(worker.cached_scripts(), 1);
    for _ in 0..3 {
        assert_eq!(run_on(&mut worker, script).unwrap(), first);
    }
    let expected_source = format!("async function () {{{script}\n}}");
    assert_eq!(
        first.payload,
        json!({
            "r": ["a\\n|btrue1", "1180591620717411303424", "xbbb", [1, 2], 0.30000000000000004,
                  "at <anonymous> (function-node.js:5:15)", 2,
                  expected_source.len(), expected_source.chars().take(40).collect::<String>()],
            "f": true
        })
    );
    assert_eq!(worker.cached_scripts(), 1);
}

/// Scripts are told apart by their whole text.
#[test]
fn compiled_scripts_are_told_apart_by_their_text() {
    let mut worker = worker::Worker::new(limits(2_000)).unwrap();
    for round in 0..2 {
        for (script, expected) in [
            ("return 1;", json!(1)),
            ("return 2;", json!(2)),
            ("return 1; ", json!(1)),
            ("return '1';", json!("1")),
            ("return 1;//", json!(1)),
        ] {
            assert_eq!(
                run_on(&mut worker, script).unwrap().payload,
                expected,
                "{round}"
            );
        }
    }
    assert_eq!(worker.cached_scripts(), 5);
}

/// Nothing a run does to its function, to what the script defined or to the built-ins survives
/// into the next run of the same (compiled) script; neither does code that closes the wrapper
/// early and runs at the top level.
#[test]
fn a_compiled_script_starts_afresh_every_run() {
    let mut worker = worker::Worker::new(limits(2_000)).unwrap();
    let script = "const f = arguments.callee;\n\
         payload.seen = [f.runs, f.prototype, Object.getPrototypeOf(f).touched, typeof leftover,\n\
           helper.calls, [].polluted, Object.isFrozen(f)];\n\
         f.runs = (f.runs || 0) + 1; f.prototype = 'changed'; Object.getPrototypeOf(f).touched = 1;\n\
         globalThis.leftover = 1; function helper() {} helper.calls = 1; Array.prototype.polluted = 1;\n\
         Object.freeze(f);";
    for _ in 0..3 {
        let out = run_on(&mut worker, script).unwrap();
        assert_eq!(
            out.payload,
            json!({ "seen": [null, null, null, "undefined", null, null, false] })
        );
    }
    let escaping = "}); globalThis.escaped = (globalThis.escaped || 0) + 1; (async function () {";
    for _ in 0..3 {
        assert_eq!(run_on(&mut worker, escaping).unwrap().payload, json!({}));
        let out = run_on(&mut worker, "payload.escaped = typeof escaped;").unwrap();
        assert_eq!(out.payload, json!({ "escaped": "undefined" }));
    }
}

/// A script that does not compile is not kept and fails the same way every time.
#[test]
fn a_syntax_error_is_reported_every_time() {
    let mut worker = worker::Worker::new(limits(2_000)).unwrap();
    let first = script_error(run_on(&mut worker, "payload.x = ;"));
    assert_eq!(first.0, "SyntaxError");
    for _ in 0..3 {
        assert_eq!(script_error(run_on(&mut worker, "payload.x = ;")), first);
        assert_eq!(
            run_on(&mut worker, "payload.x = 1;").unwrap().payload,
            json!({ "x": 1 })
        );
    }
    assert_eq!(worker.cached_scripts(), 1);
}

/// A compiled script still stops at the time limit and the memory limit.
#[test]
fn a_compiled_script_still_times_out_and_runs_out_of_memory() {
    let mut quick = worker::Worker::new(limits(100)).unwrap();
    let mut worker = worker::Worker::new(limits(5_000)).unwrap();
    for _ in 0..3 {
        assert_eq!(run_on(&mut quick, "while (true) {}"), Err(JsError::Timeout));
        assert_eq!(
            run_on(
                &mut worker,
                "const keep = []; while (true) keep.push(new Array(100000).fill(1.5));"
            ),
            Err(JsError::OutOfMemory)
        );
    }
    assert_eq!((quick.cached_scripts(), worker.cached_scripts()), (1, 1));
    for worker in [&mut quick, &mut worker] {
        assert_eq!(
            run_on(worker, "payload.ok = true;").unwrap().payload,
            json!({ "ok": true })
        );
    }
}

/// A reset copies back less than the snapshot spans: the set-up's large freed blocks are
/// skipped (their contents are never read before they are written again).
#[test]
fn a_reset_skips_the_set_ups_freed_memory() {
    let worker = worker::Worker::new(limits(2_000)).unwrap();
    let (spans, copied) = (worker.snapshot_bytes(), worker.snapshot_copied_bytes());
    eprintln!("snapshot spans {spans} bytes, a reset copies {copied}");
    assert!(copied < spans, "{copied} of {spans}");
}

/// More scripts than a worker keeps compiled: each still runs its own code; the cache stays
/// within its bounds; once it has missed enough runs the worker asks to be replaced, and the new
/// one keeps the scripts in use then.
#[test]
fn more_scripts_than_the_cache_holds_all_run_correctly() {
    let limits = limits(2_000);
    let mut worker = worker::Worker::new(limits).unwrap();
    let base = worker.snapshot_bytes();
    let count = worker::MAX_CACHED_SCRIPTS + 20;
    // Each pass misses 20 runs; the restart comes with the last pass's last miss.
    let passes = worker::MISSES_BEFORE_RESTART as usize / 20;
    let mut restarted = false;
    'passes: for pass in 0..passes + 1 {
        for i in 0..count {
            let out = worker
                .run(&format!("return {i} * 2;"), "{}", Box::new(|| false))
                .unwrap();
            assert_eq!(out.payload, json!(i * 2));
            assert_eq!(
                worker.cached_scripts(),
                (i + 1).min(worker::MAX_CACHED_SCRIPTS).max(if pass > 0 {
                    worker::MAX_CACHED_SCRIPTS
                } else {
                    0
                })
            );
            if !worker.prepare() {
                assert_eq!(pass, passes - 1, "replaced after {pass} passes");
                restarted = true;
                break 'passes;
            }
        }
    }
    assert!(
        restarted,
        "a full cache that keeps missing asks for a new worker"
    );
    assert!(worker.snapshot_bytes() <= base + worker::MAX_CACHED_BYTES);
    let mut worker = worker::Worker::new(limits).unwrap(); // as the pool does
    let out = worker
        .run("return 'new';", "{}", Box::new(|| false))
        .unwrap();
    assert_eq!(out.payload, json!("new"));
    assert_eq!(worker.cached_scripts(), 1);

    // Big scripts are kept only while the snapshot stays within its bound; a script too big to
    // keep at all runs all the same.
    let big = |n: usize, size: usize| {
        format!("const s = '{}';\nreturn s.length + {n};", "x".repeat(size))
    };
    for n in 0..8 {
        let out = run_on(&mut worker, &big(n, worker::MAX_CACHED_BYTES / 4)).unwrap();
        assert_eq!(out.payload, json!(worker::MAX_CACHED_BYTES / 4 + n));
        assert!(worker.snapshot_bytes() <= base + worker::MAX_CACHED_BYTES);
    }
    assert!(worker.cached_scripts() < 8);
    for _ in 0..3 {
        let out = run_on(&mut worker, &big(0, worker::MAX_CACHED_BYTES * 2)).unwrap();
        assert_eq!(out.payload, json!(worker::MAX_CACHED_BYTES * 2));
    }
    assert_eq!(
        run_on(&mut worker, "return 'after';").unwrap().payload,
        json!("after")
    );
}

/// Running out of memory reads as such whichever allocation hit the limit: many small strings
/// (the last refused block a small one, with no room left for QuickJS's error before the arena
/// kept a reserve for it: the first run of this script on a worker read as a thrown `null`), and
/// a script that catches the error and goes on allocating past the reserve. A script's own
/// `throw null` stays a thrown `null`.
#[test]
fn out_of_memory_is_reported_whatever_allocation_hit_the_limit() {
    let mut worker = worker::Worker::new(JsLimits::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            run_on(
                &mut worker,
                "const a = []; while (true) { a.push('x'.repeat(1000) + a.length); }"
            ),
            Err(JsError::OutOfMemory)
        );
        assert_eq!(
            run_on(
                &mut worker,
                "const a = []; while (true) { try { a.push('x'.repeat(1000) + a.length); } catch (e) { a.push(e); } }"
            ),
            Err(JsError::OutOfMemory)
        );
        assert_eq!(
            run_on(&mut worker, "throw null"),
            Err(JsError::Script {
                name: "Error".into(),
                message: "null".into()
            })
        );
    }
}
