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

/// Prints throughput; asserts nothing about time (build with `--release` for real numbers).
#[tokio::test]
async fn throughput_of_a_small_script() {
    const SCRIPT: &str = "payload.data.x = payload.data.x * 2;";
    let budget = Duration::from_millis(700);
    let js = Arc::new(JsSandbox::new(1, JsLimits::default()));
    let payload = json!({ "time": "2024-05-01T12:00:00.000Z", "data": { "x": 2 } });
    payload_of(&js, SCRIPT, payload.clone()).await; // warm up

    // One at a time: each run waits for the previous answer.
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < budget {
        js.run(SCRIPT, payload.clone()).await.unwrap();
        runs += 1;
    }
    let sequential = f64::from(runs) / started.elapsed().as_secs_f64();

    // Eight in flight: the worker never idles.
    let started = Instant::now();
    let mut runs = 0u32;
    while started.elapsed() < budget {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                let (js, payload) = (Arc::clone(&js), payload.clone());
                tokio::spawn(async move { js.run(SCRIPT, payload).await })
            })
            .collect();
        for run in batch {
            run.await.unwrap().unwrap();
        }
        runs += 8;
    }
    let pipelined = f64::from(runs) / started.elapsed().as_secs_f64();

    // The same work on one reused context, and the isolation cost on its own (creating and
    // collecting a context), measured off the executor like the workers.
    let payload_json = payload.to_string();
    let (reused, per_context) = tokio::task::spawn_blocking(move || {
        let runtime = rquickjs::Runtime::new().unwrap();
        let context = rquickjs::Context::full(&runtime).unwrap();
        let source = format!("(async function () {{{SCRIPT}\n}})");
        let started = Instant::now();
        let mut runs = 0u32;
        context.with(|ctx| {
            while started.elapsed() < budget / 2 {
                let payload = ctx.json_parse(payload_json.as_str()).unwrap();
                ctx.globals().set("payload", payload).unwrap();
                let body: rquickjs::Function = ctx.eval(source.as_str()).unwrap();
                let _: rquickjs::Promise = body.call(()).unwrap();
                while ctx.execute_pending_job() {}
                let result: rquickjs::Value = ctx.globals().get("payload").unwrap();
                let json = ctx
                    .json_stringify(result)
                    .unwrap()
                    .unwrap()
                    .to_string()
                    .unwrap();
                let _: serde_json::Value = serde_json::from_str(&json).unwrap();
                runs += 1;
            }
        });
        let reused = f64::from(runs) / started.elapsed().as_secs_f64();
        drop(context);
        let started = Instant::now();
        let mut contexts = 0u32;
        while started.elapsed() < budget / 2 {
            drop(rquickjs::Context::full(&runtime).unwrap());
            runtime.run_gc();
            contexts += 1;
        }
        (
            reused,
            started.elapsed().as_secs_f64() * 1e6 / f64::from(contexts),
        )
    })
    .await
    .unwrap();

    println!(
        "js sandbox, one worker: {sequential:.0} runs/s one at a time, {pipelined:.0} runs/s with 8 in flight; \
         the same script on one reused context (no isolation): {reused:.0} runs/s; a fresh context costs {per_context:.0} µs"
    );
}
