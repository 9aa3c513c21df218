//! One worker's QuickJS state and one run on it. Everything here runs on the worker's own thread:
//! a `Runtime` is neither `Send` nor shared.
//!
//! # Isolation: one context, put back byte for byte after every run
//! The worker's runtime and its single context live in an [`Arena`] (`arena.rs`): a memory
//! region of their own. Right after they are set up (all intrinsics, the console, a `Math.random`
//! that does not rewind) the worker copies the region's used bytes aside (~340 KB); once a run is
//! over it copies them back. Everything a script could have changed is in that region — globals,
//! built-in prototypes, hidden intrinsics (generator, async and iterator prototypes), QuickJS's
//! per-context state (`Error.prepareStackTrace`, `Error.stackTraceLimit`), the job queue, the
//! symbol registry — so a later run finds exactly the state the first run found, and nothing one
//! run does can be seen by another. Cost: a `memcpy` of the snapshot (~10 µs) instead of a
//! fresh context and a collection per run (`Context::full`, 100–170 µs; even `Context::base`
//! with no optional intrinsics is ~65 µs): about four times the runs a second on one worker for a
//! small script (`js_throughput` in `tests.rs`).
//!
//! Freezing and reusing one context without the copy was rejected: QuickJS keeps per-context
//! state that freezing does not cover (the `Error` setters above), every hidden intrinsic must be
//! found and frozen, and frozen prototypes break ordinary code (`this.name = 'MyError'` in an
//! `Error` subclass).
//!
//! What the copy-back asks of this file: no JavaScript runs and no Rust handle to a value made
//! during the run exists when it happens (`execute` drops all of them before it returns); no Rust
//! closure becomes a JavaScript function after the snapshot (its box would never be freed); and
//! the Rust closures made before it (the console's sink, `Math.random`) are also held from Rust,
//! so that no run can free them by dropping their last JavaScript reference. The only other
//! handles that outlive a run are the kept compiled scripts' (below), each taken before the
//! snapshot it belongs to and given back before the runtime is freed. `performance.now()`
//! counts from when the worker was set up, not from the run's start.
//!
//! # Compiled scripts, kept in the snapshot
//! Compiling the wrapper around a small script was a fifth of its run (~50k of ~240k
//! instructions; 7–12 µs). So the first run of a script on a worker compiles it on the restored
//! heap, before the run starts (compiling runs no JavaScript: code that closes the wrapper early
//! only runs when the compiled script is evaluated), keeps a reference to the compiled script
//! and takes a new snapshot. Every later run starts from a heap that already holds it and only
//! evaluates it, which yields the wrapper function: evaluating source is exactly compiling then
//! evaluating (QuickJS's `JS_Eval`), and the compiled script is the very bytecode a compilation
//! gives, put back byte for byte with the rest after each run, so a run can no more change it
//! for the next than anything else in the region. Serializing bytecode (`JS_WriteObject` /
//! `JS_ReadObject`, ~1 µs to read back a small script) was tried instead and rejected: what it
//! reads back is not always the same (a tagged template's strings array comes back extensible,
//! so `Object.isFrozen` differs).
//!
//! Bounds, because every restore copies what the cache adds: [`MAX_CACHED_SCRIPTS`] scripts and
//! [`MAX_CACHED_BYTES`] of snapshot growth (a small script adds ~700 bytes). Keeping a script
//! costs its first run a new snapshot (~10 µs). A script that does not compile, or would not
//! fit, is compiled by each run as before (and remembered, so that it is not compiled twice a
//! run). Once the cache is full, other scripts are compiled by each run; after
//! [`MISSES_BEFORE_RESTART`] such runs the worker asks to be replaced, so that the scripts in
//! use then take the places of those no longer used. The memory limit counts the kept scripts
//! (at most [`MAX_CACHED_BYTES`] of it).
//!
//! A run that timed out, ran out of memory or failed inside flowd needs nothing more: the copy
//! undoes it like any other. After a run that took the region far past the snapshot (a big
//! allocation) the pages above the snapshot are given back to the system (`madvise`; where that
//! is not available the worker starts over on a new region). A worker whose run panicked is
//! replaced.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;
use std::time::Instant;

use rquickjs::context::EvalOptions;
use rquickjs::object::Property;
use rquickjs::{
    qjs, Coerced, Context, Ctx, FromJs, Function, Object, Persistent, Promise, Runtime, Value,
};

use super::arena::{Arena, ArenaAllocator, Snapshot};

use super::{
    JsError, JsLimits, JsOutcome, MAX_ERROR_MESSAGE_BYTES, MAX_LOG_LINES, MAX_LOG_LINE_BYTES,
};

/// The console implementation, set up once per worker, before the snapshot.
const CONSOLE_JS: &str = include_str!("console.js");

/// The file name QuickJS puts in stack traces of the user's script.
const SCRIPT_FILE: &CStr = c"function-node.js";
/// Most scripts a worker keeps compiled in its snapshot.
pub(super) const MAX_CACHED_SCRIPTS: usize = 64;
/// Most bytes keeping compiled scripts may add to the snapshot, which every reset copies.
pub(super) const MAX_CACHED_BYTES: usize = 128 * 1024;
/// Runs a full cache could not serve after which the worker starts over, so that scripts in use
/// now can take the places of scripts no longer used.
pub(super) const MISSES_BEFORE_RESTART: u32 = 1000;

/// A run's deadline (and a way to see that nobody waits for the run any more), shared with the
/// runtime's interrupt handler.
#[derive(Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    /// Tells whether the caller has gone away; the run then stops as if out of time.
    abandoned: RefCell<Option<Abandoned>>,
    /// Set once the run has been stopped (deadline passed or caller gone).
    expired: Cell<bool>,
}

/// Tells whether the caller of a run has stopped waiting for it.
pub(super) type Abandoned = Box<dyn Fn() -> bool>;

impl Clock {
    fn start(&self, limits: &JsLimits, abandoned: Abandoned) {
        self.expired.set(false);
        self.deadline.set(Instant::now().checked_add(limits.time));
        *self.abandoned.borrow_mut() = Some(abandoned);
    }

    fn stop(&self) {
        self.deadline.set(None);
        self.abandoned.borrow_mut().take();
    }

    /// True once the run must stop; QuickJS calls this every few thousand operations.
    fn check(&self) -> bool {
        if self.expired.get() {
            return true;
        }
        let late = matches!(self.deadline.get(), Some(deadline) if Instant::now() >= deadline);
        let gone = || {
            self.abandoned
                .borrow()
                .as_ref()
                .is_some_and(|abandoned| abandoned())
        };
        if late || gone() {
            self.expired.set(true);
        }
        self.expired.get()
    }
}

/// Lines written by `console.*` during one run, capped.
#[derive(Default)]
struct Logs {
    lines: Vec<String>,
}

impl Logs {
    /// Keeps `line` (cut to the per-line cap) if the run has room; tells whether it has more.
    fn push(&mut self, mut line: String) -> bool {
        if self.lines.len() >= MAX_LOG_LINES {
            return false;
        }
        truncate_utf8(&mut line, MAX_LOG_LINE_BYTES);
        self.lines.push(line);
        self.lines.len() < MAX_LOG_LINES
    }
}

/// Cuts `text` to at most `max` bytes without splitting a character.
fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// The scripts a worker keeps compiled, by their text. Each value is a compiled script (QuickJS
/// bytecode) in the region that this map holds one reference to; the reference is counted in the
/// snapshot, so every restore brings the script back as it was compiled, and no run can free it.
#[derive(Default)]
struct Scripts {
    compiled: HashMap<Box<str>, qjs::JSValue>,
    /// Hashes of scripts that could not be kept (they do not compile, or take too much room),
    /// so that they are not compiled twice a run; a hint only: a wrong answer costs a compilation.
    not_kept: HashSet<u64>,
    hasher: RandomState,
    /// Runs since the cache filled up whose scripts it could not keep.
    missed_while_full: u32,
}

/// Most scripts remembered as not kept before that list starts over.
const MAX_NOT_KEPT: usize = 256;

/// How a run gets its script's compiled form.
#[derive(Clone, Copy)]
enum Code<'a> {
    /// Kept in the snapshot; the run uses it without taking it over.
    Kept(qjs::JSValue),
    /// Not kept: the run compiles the source itself.
    Source(&'a str),
}

/// Memory a worker's region reserves beyond twice the memory limit, for the size classes
/// rounding and the set-up itself.
const REGION_HEADROOM: usize = 16 * 1024 * 1024;
/// The region reserved when memory is unlimited.
const UNLIMITED_REGION: usize = 1024 * 1024 * 1024;
/// A run that took the region's high-water mark this far past the snapshot gives the pages above
/// the snapshot back to the system (a restore alone leaves them resident).
const RETAINED_AFTER_RUN: usize = 4 * 1024 * 1024;

/// A worker's QuickJS runtime and its one context, living in an [`Arena`] that goes back to the
/// snapshot taken right after they were set up once a run is over.
pub(super) struct Worker {
    limits: JsLimits,
    clock: Rc<Clock>,
    /// Where `console.*` writes, for the run under way (the console lives in the snapshot).
    logs: Rc<RefCell<Logs>>,
    /// True once a run has touched the region since the last restore.
    dirty: bool,
    /// Set by the arena when it refused a block for the memory limit.
    refused: Rc<Cell<bool>>,
    /// Scripts compiled in the snapshot, so that runs need not compile them.
    scripts: Scripts,
    /// The snapshot's size right after set-up, before any script was kept.
    base_len: usize,
    // Fields drop in this order: the handles, then the context (which holds the runtime), then the
    // region they live in.
    /// The functions backed by Rust closures (the console's sink, `Math.random`), held from Rust
    /// so that no script can drop their last reference: a run that did would free the closure
    /// while the restored heap still points at it.
    _rust_functions: Vec<Persistent<Function<'static>>>,
    context: Context,
    snapshot: Snapshot,
    arena: Box<Arena>,
}

impl Worker {
    pub(super) fn new(limits: JsLimits) -> Result<Self, JsError> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            JsError::Internal(format!("cannot create a JavaScript {what}: {e}"))
        };
        let size = match limits.memory_bytes {
            0 => UNLIMITED_REGION,
            limit => limit.saturating_mul(2).saturating_add(REGION_HEADROOM),
        };
        // The arena, not QuickJS, enforces the memory limit: see `arena::OVER_LIMIT_RESERVE`.
        let mut arena = Box::new(
            Arena::new(size, limits.memory_bytes)
                .ok_or_else(|| internal("memory region", &"out of memory"))?,
        );
        let refused = arena.refused();
        let runtime = Runtime::new_with_alloc(ArenaAllocator(&mut *arena))
            .map_err(|e| internal("runtime", &e))?;
        runtime.set_max_stack_size(limits.max_stack_bytes);
        let clock = Rc::new(Clock::default());
        let watch = Rc::clone(&clock);
        runtime.set_interrupt_handler(Some(Box::new(move || watch.check())));
        let context = Context::full(&runtime).map_err(|e| internal("context", &e))?;
        let logs = Rc::new(RefCell::new(Logs::default()));
        let rust_functions = context
            .with(|ctx| set_up(&ctx, &logs))
            .map_err(|e| internal("context", &e))?;
        // What setting up left behind would otherwise be collected in every run's time.
        runtime.run_gc();
        let snapshot = arena.snapshot();
        Ok(Worker {
            limits,
            clock,
            logs,
            dirty: false,
            refused,
            scripts: Scripts::default(),
            base_len: snapshot.len(),
            _rust_functions: rust_functions,
            context,
            snapshot,
            arena,
        })
    }

    /// Puts the worker back as it was set up (with the scripts it keeps compiled), while nobody
    /// waits for it; false when it should be replaced instead (a run used much memory and its
    /// pages cannot be given back in place, or its cache has been full for a long while).
    pub(super) fn prepare(&mut self) -> bool {
        let fresh = self.scripts.missed_while_full < MISSES_BEFORE_RESTART;
        if !self.dirty {
            return fresh;
        }
        let high_water = self.arena.used();
        // SAFETY: no JavaScript runs now and every handle made since the snapshot was dropped
        // (by `execute` before it returned, or by `keep` before it took the snapshot): the
        // runtime and context are the snapshot's again.
        unsafe { self.arena.restore(&self.snapshot) };
        self.dirty = false;
        // A run that touched much more than the snapshot gives those pages back (a restore
        // leaves them resident); smaller ones keep theirs for the next run.
        fresh
            && (high_water <= self.snapshot.len() + RETAINED_AFTER_RUN
                || self.arena.release(self.snapshot.len(), high_water))
    }

    /// Scripts this worker keeps compiled.
    #[cfg(test)]
    pub(super) fn cached_scripts(&self) -> usize {
        self.scripts.compiled.len()
    }

    /// Bytes the snapshot spans.
    #[cfg(test)]
    pub(super) fn snapshot_bytes(&self) -> usize {
        self.snapshot.len()
    }

    /// Bytes each reset copies back.
    #[cfg(test)]
    pub(super) fn snapshot_copied_bytes(&self) -> usize {
        self.snapshot.copied_len()
    }

    /// Runs one Function node script against the payload (`payload_json`, JSON text); stops
    /// early (as a timeout) once `abandoned` says nobody waits for the answer.
    pub(super) fn run(
        &mut self,
        script: &str,
        payload_json: &str,
        abandoned: Abandoned,
    ) -> Result<JsOutcome, JsError> {
        // Normally done already, right after the last answer; whether that run's pages could be
        // given back only matters to the pool, which replaces a worker that could not.
        let _ = self.prepare();
        // Compiling counts against the run's time, whether it happens in `keep` or in the run.
        self.clock.start(&self.limits, abandoned);
        let code = self.keep(script);
        self.logs.borrow_mut().lines.clear();
        self.dirty = true;
        self.refused.set(false);
        let result = self
            .context
            .with(|ctx| execute(&ctx, code, payload_json, &self.clock, &self.refused));
        self.clock.stop();
        let logs = std::mem::take(&mut self.logs.borrow_mut().lines);
        result.map(|payload| JsOutcome { payload, logs })
    }

    /// How the run of `script` gets its compiled form: kept in the snapshot, or compiled now
    /// and kept (with a new snapshot) when the script is new and there is room. Called on the
    /// restored heap, before the run.
    fn keep<'s>(&mut self, script: &'s str) -> Code<'s> {
        let scripts = &mut self.scripts;
        if let Some(&compiled) = scripts.compiled.get(script) {
            return Code::Kept(compiled);
        }
        let hash = scripts.hasher.hash_one(script);
        if scripts.not_kept.contains(&hash) {
            return Code::Source(script);
        }
        if scripts.compiled.len() >= MAX_CACHED_SCRIPTS {
            scripts.missed_while_full = scripts.missed_while_full.saturating_add(1);
            return Code::Source(script);
        }
        // Compiling runs no JavaScript (code that closes the wrapper early runs when the
        // compiled script is evaluated, in the run): what it leaves is the compiled script and
        // the atoms it names, which no script can tell from a fresh compilation's.
        self.dirty = true;
        let compiled = self.context.with(|ctx| match compile(&ctx, script) {
            // SAFETY: a new reference to a live value, for the cache to own (forgetting the
            // `Value` instead would also keep its hold on the context).
            Ok(compiled) => {
                Some(unsafe { qjs::JS_DupValue(ctx.as_raw().as_ptr(), compiled.as_raw()) })
            }
            Err(_) => {
                let _ = ctx.catch(); // the run compiles it again and reports the error
                None
            }
        });
        let grown = self.arena.used().saturating_sub(self.base_len);
        match compiled {
            Some(raw) if grown <= MAX_CACHED_BYTES => {
                scripts.compiled.insert(script.into(), raw);
                // No handle to anything made since the last snapshot is held but the cache's.
                self.snapshot = self.arena.snapshot();
                self.dirty = false;
                Code::Kept(raw)
            }
            _ => {
                if compiled.is_some() && !scripts.compiled.is_empty() {
                    // It might fit once the scripts kept now are no longer used.
                    scripts.missed_while_full = scripts.missed_while_full.saturating_add(1);
                } else {
                    if scripts.not_kept.len() >= MAX_NOT_KEPT {
                        scripts.not_kept.clear();
                    }
                    scripts.not_kept.insert(hash);
                }
                // The restore undoes the compilation (and drops the reference taken above).
                let _ = self.prepare();
                Code::Source(script)
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A run that panicked may have left the heap half-updated; the snapshot is a state the
        // runtime can be freed from.
        if self.dirty {
            // SAFETY: as in `prepare`; nothing of the last run is alive on the Rust side.
            unsafe { self.arena.restore(&self.snapshot) };
        }
        // The kept scripts' references are the cache's to give back before the runtime goes.
        let scripts = &mut self.scripts.compiled;
        self.context.with(|ctx| {
            for (_, compiled) in scripts.drain() {
                // SAFETY: a reference the cache owns, to a value of this runtime.
                unsafe { qjs::JS_FreeValue(ctx.as_raw().as_ptr(), compiled) };
            }
        });
    }
}

/// What every run finds, made once before the snapshot: the console and a `Math.random` that
/// does not repeat (QuickJS keeps its generator's state in the context, which every restore would
/// rewind).
fn set_up<'js>(
    ctx: &Ctx<'js>,
    logs: &Rc<RefCell<Logs>>,
) -> rquickjs::Result<Vec<Persistent<Function<'static>>>> {
    let factory: Function = ctx.eval_with_options(CONSOLE_JS, sloppy("console.js"))?;
    let logs = Rc::clone(logs);
    let sink = Function::new(ctx.clone(), move |line: String| {
        logs.borrow_mut().push(line)
    })?;
    let console: Value = factory.call((sink.clone(),))?;
    define_console(ctx, console)?;

    let random = Function::new(ctx.clone(), rand::random::<f64>)?
        .with_name("random")?
        .with_length(0)?;
    let math: Object = ctx.globals().get("Math")?;
    math.prop(
        "random",
        Property::from(random.clone()).writable().configurable(),
    )?;
    Ok(vec![
        Persistent::save(ctx, sink),
        Persistent::save(ctx, random),
    ])
}

fn sloppy(file: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    // rquickjs evaluates in strict mode by default; Function node scripts are sloppy scripts.
    options.strict = false;
    options.backtrace_barrier = true;
    options.promise = false;
    options.filename = Some(file.to_owned());
    options
}

/// The run itself, inside the run's context.
fn execute<'js>(
    ctx: &Ctx<'js>,
    code: Code<'_>,
    payload_json: &str,
    clock: &Clock,
    refused: &Cell<bool>,
) -> Result<serde_json::Value, JsError> {
    let fail = |e: rquickjs::Error| failure(ctx, e, clock, refused);

    let payload = ctx.json_parse(payload_json).map_err(fail)?;
    let globals = ctx.globals();
    globals.set("payload", payload).map_err(fail)?;

    let body = wrapper(ctx, code).map_err(fail)?;
    let promise: Promise = body.call(()).map_err(fail)?;

    // Run queued jobs until none is left (Node's microtask checkpoint), within the deadline.
    while ctx.execute_pending_job() {
        if clock.check() {
            return Err(JsError::Timeout);
        }
    }
    let returned: Value = match promise.result::<Value>() {
        None if clock.check() => return Err(JsError::Timeout),
        None => {
            return Err(JsError::Script {
                name: "Error".to_owned(),
                message: "the script awaited a promise that never settles".to_owned(),
            })
        }
        Some(result) => result.map_err(fail)?,
    };

    // A non-undefined return value replaces the payload (NODES.md); otherwise the result is
    // whatever the global `payload` holds now (mutated or reassigned).
    let result = if returned.is_undefined() {
        globals.get::<_, Value>("payload").map_err(fail)?
    } else {
        returned
    };
    // JSON.stringify gives JSON's answer for what JSON cannot hold: undefined and functions
    // dropped (null in arrays), NaN and ±Infinity null, Dates ISO strings (toJSON).
    let Some(json) = ctx.json_stringify(result).map_err(fail)? else {
        return Ok(serde_json::Value::Null);
    };
    let json = json.to_string().map_err(fail)?;
    serde_json::from_str(&json).map_err(|e| JsError::Script {
        name: "RangeError".to_owned(),
        message: format!("the resulting payload cannot be read back: {e}"),
    })
}

/// The script's body as a function, ready to call: what evaluating the wrapper's source gives,
/// which is compiling it (unless it is kept compiled) and running the compiled code once.
fn wrapper<'js>(ctx: &Ctx<'js>, code: Code<'_>) -> rquickjs::Result<Function<'js>> {
    let compiled;
    let compiled = match code {
        Code::Kept(kept) => kept,
        Code::Source(script) => {
            compiled = compile(ctx, script)?;
            compiled.as_raw()
        }
    };
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: `compiled` is a live compiled script of this context (a kept one lives as long as
    // the worker); JS_EvalFunction takes over the new reference it is given and returns an owned
    // value or an exception.
    let value = unsafe { qjs::JS_EvalFunction(raw, qjs::JS_DupValue(raw, compiled)) };
    if unsafe { qjs::JS_IsException(value) } {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: an owned value of this context.
    let value = unsafe { Value::from_raw(ctx.clone(), value) };
    Function::from_js(ctx, value)
}

/// Compiles the wrapper around `script` without running it (what `eval` does first).
///
/// The body becomes a function so that a top-level `return` works, and an async one so that
/// `await` works (NODES.md: edge workflows allow async scripts; a synchronous script behaves the
/// same either way). `payload` stays a global, so reassigning it is seen afterwards. The script
/// starts on the wrapper's first line so that stack traces give its own line numbers; the
/// closing brace has a line of its own in case the script ends in a comment. Sloppy mode, as
/// for any script; the backtrace stops at the script.
fn compile<'js>(ctx: &Ctx<'js>, script: &str) -> rquickjs::Result<Value<'js>> {
    let source = CString::new(format!("(async function () {{{script}\n}})"))?;
    let flags = qjs::JS_EVAL_TYPE_GLOBAL
        | qjs::JS_EVAL_FLAG_BACKTRACE_BARRIER
        | qjs::JS_EVAL_FLAG_COMPILE_ONLY;
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: the source is NUL-terminated and `len` leaves the NUL out, as JS_Eval asks.
    let compiled = unsafe {
        qjs::JS_Eval(
            raw,
            source.as_ptr(),
            source.as_bytes().len() as _,
            SCRIPT_FILE.as_ptr(),
            flags as _,
        )
    };
    if unsafe { qjs::JS_IsException(compiled) } {
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: an owned value of this context.
    Ok(unsafe { Value::from_raw(ctx.clone(), compiled) })
}

/// Defines `console` as a plain (writable, configurable, non-enumerable) property, as in Node.
fn define_console<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<()> {
    ctx.globals()
        .prop("console", Property::from(value).writable().configurable())
}

/// Turns a failed step into the run's error; `refused` tells whether the memory limit was hit.
fn failure<'js>(
    ctx: &Ctx<'js>,
    error: rquickjs::Error,
    clock: &Clock,
    refused: &Cell<bool>,
) -> JsError {
    let error = match error {
        rquickjs::Error::Exception => {
            let thrown = ctx.catch();
            // Past the limit QuickJS throws an Error it builds in the arena's reserve; should
            // even that fail (a script that caught it and went on allocating), what is thrown is
            // whatever QuickJS had instead (`null`): the run still ran out of memory.
            if refused.get() && !thrown.is_error() {
                JsError::OutOfMemory
            } else {
                describe_exception(ctx, thrown)
            }
        }
        rquickjs::Error::Allocation => JsError::OutOfMemory,
        other => JsError::Internal(other.to_string()),
    };
    // Reading the thrown value can run script code (getters, toString); whatever it left is not
    // ours to report.
    let _ = ctx.catch();
    if clock.check() {
        return JsError::Timeout;
    }
    error
}

/// Name and message of a thrown value: an Error's own `name` and `message`, or `Error` and
/// `String(value)` for anything else.
fn describe_exception<'js>(ctx: &Ctx<'js>, thrown: Value<'js>) -> JsError {
    let text = |value: rquickjs::Result<Coerced<String>>| value.map(|c| c.0).ok();
    let (name, message) = match thrown.as_object() {
        Some(object) if thrown.is_error() => (
            text(object.get("name")).unwrap_or_else(|| "Error".to_owned()),
            text(object.get("message")).unwrap_or_default(),
        ),
        // String(symbol) is "Symbol(description)", but coercing a symbol to text throws.
        _ if thrown.is_symbol() => {
            let description = thrown
                .as_symbol()
                .and_then(|symbol| symbol.description().ok())
                .and_then(|d| d.as_string().and_then(|d| d.to_string().ok()))
                .unwrap_or_default();
            ("Error".to_owned(), format!("Symbol({description})"))
        }
        _ => (
            "Error".to_owned(),
            text(thrown.get()).unwrap_or_else(|| thrown.type_name().to_owned()),
        ),
    };
    let _ = ctx.catch();
    if name == "InternalError" && message == "out of memory" {
        return JsError::OutOfMemory;
    }
    let mut message = message;
    truncate_utf8(&mut message, MAX_ERROR_MESSAGE_BYTES);
    JsError::Script { name, message }
}
