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
//! small script (`js_throughput` in `tests.rs`). What a small run costs now is mostly compiling
//! the script, `JSON.stringify` of the result and the copy itself.
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
//! so that no run can free them by dropping their last JavaScript reference. `performance.now()`
//! counts from when the worker was set up, not from the run's start.
//!
//! A run that timed out, ran out of memory or failed inside flowd needs nothing more: the copy
//! undoes it like any other. After a run that took the region far past the snapshot (a big
//! allocation) the pages above the snapshot are given back to the system (`madvise`; where that
//! is not available the worker starts over on a new region). A worker whose run panicked is
//! replaced.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use rquickjs::context::EvalOptions;
use rquickjs::object::Property;
use rquickjs::{Coerced, Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value};

use super::arena::{Arena, ArenaAllocator, Snapshot};

use super::{
    JsError, JsLimits, JsOutcome, MAX_ERROR_MESSAGE_BYTES, MAX_LOG_LINES, MAX_LOG_LINE_BYTES,
};

/// The console implementation, set up once per worker, before the snapshot.
const CONSOLE_JS: &str = include_str!("console.js");

/// The file name QuickJS puts in stack traces of the user's script.
const SCRIPT_FILE: &str = "function-node.js";

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
        let mut arena =
            Box::new(Arena::new(size).ok_or_else(|| internal("memory region", &"out of memory"))?);
        let runtime = Runtime::new_with_alloc(ArenaAllocator(&mut *arena))
            .map_err(|e| internal("runtime", &e))?;
        runtime.set_memory_limit(limits.memory_bytes);
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
            _rust_functions: rust_functions,
            context,
            snapshot,
            arena,
        })
    }

    /// Puts the worker back as it was set up, while nobody waits for it; false when it should be
    /// replaced instead (a run used much memory and its pages cannot be given back in place).
    pub(super) fn prepare(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        let high_water = self.arena.used();
        // SAFETY: no JavaScript runs now and every handle made during the last run was dropped
        // when `execute` returned: the runtime and context are the snapshot's again.
        unsafe { self.arena.restore(&self.snapshot) };
        self.dirty = false;
        // A run that touched much more than the snapshot gives those pages back (a restore
        // leaves them resident); smaller ones keep theirs for the next run.
        high_water <= self.snapshot.len() + RETAINED_AFTER_RUN
            || self.arena.release(self.snapshot.len(), high_water)
    }

    /// Bytes each reset copies back.
    #[cfg(test)]
    pub(super) fn snapshot_bytes(&self) -> usize {
        self.snapshot.len()
    }

    /// Runs one Function node script against `payload`; stops early (as a timeout) once
    /// `abandoned` says nobody waits for the answer.
    pub(super) fn run(
        &mut self,
        script: &str,
        payload: &serde_json::Value,
        abandoned: Abandoned,
    ) -> Result<JsOutcome, JsError> {
        // Normally done already, right after the last answer; whether that run's pages could be
        // given back only matters to the pool, which replaces a worker that could not.
        let _ = self.prepare();
        let payload_json = serde_json::to_string(payload)
            .map_err(|e| JsError::Internal(format!("payload does not serialize: {e}")))?;
        self.logs.borrow_mut().lines.clear();
        self.dirty = true;
        self.clock.start(&self.limits, abandoned);
        let result = self
            .context
            .with(|ctx| execute(&ctx, script, &payload_json, &self.clock));
        self.clock.stop();
        let logs = std::mem::take(&mut self.logs.borrow_mut().lines);
        result.map(|payload| JsOutcome { payload, logs })
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
    script: &str,
    payload_json: &str,
    clock: &Clock,
) -> Result<serde_json::Value, JsError> {
    let fail = |e: rquickjs::Error| failure(ctx, e, clock);

    let payload = ctx.json_parse(payload_json).map_err(fail)?;
    let globals = ctx.globals();
    globals.set("payload", payload).map_err(fail)?;

    // The body becomes a function so that a top-level `return` works, and an async one so that
    // `await` works (NODES.md: edge workflows allow async scripts; a synchronous script behaves
    // the same either way). `payload` stays a global, so reassigning it is seen afterwards.
    // The script starts on the wrapper's first line so that stack traces give its own line
    // numbers; the closing brace has a line of its own in case the script ends in a comment.
    let source = format!("(async function () {{{script}\n}})");
    let body: Function = ctx
        .eval_with_options(source, sloppy(SCRIPT_FILE))
        .map_err(fail)?;
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

/// Defines `console` as a plain (writable, configurable, non-enumerable) property, as in Node.
fn define_console<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<()> {
    ctx.globals()
        .prop("console", Property::from(value).writable().configurable())
}

/// Turns a failed step into the run's error.
fn failure<'js>(ctx: &Ctx<'js>, error: rquickjs::Error, clock: &Clock) -> JsError {
    let error = match error {
        rquickjs::Error::Exception => describe_exception(ctx, ctx.catch()),
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
