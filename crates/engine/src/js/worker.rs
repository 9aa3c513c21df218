//! One worker's QuickJS state and one run on it. Everything here runs on the worker's own thread:
//! a `Runtime` is neither `Send` nor shared.
//!
//! Isolation: every run gets a **fresh `Context`** (a new realm: its own global object and
//! built-ins) on the worker's long-lived `Runtime`, so nothing a script does to globals or to
//! built-in prototypes can be seen by a later run. Creating a context is the price of that (about
//! 100–150 µs, most of a small run's cost); the worker pays it ahead of time, right after it has
//! answered, so a run on an idle worker does not wait for it. Freezing and reusing one context was
//! rejected: QuickJS keeps per-context state that freezing does not cover
//! (`Error.prepareStackTrace`, `Error.stackTraceLimit` are setters into the context), hidden
//! intrinsics (generator, async and iterator prototypes) must all be found and frozen, and frozen
//! prototypes break ordinary code (`this.name = 'MyError'` in an `Error` subclass).
//!
//! The runtime itself is replaced after a run that timed out, ran out of memory, failed inside
//! flowd, or left jobs queued, so a run that went wrong never leaves anything behind.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use rquickjs::context::EvalOptions;
use rquickjs::object::{Accessor, Property};
use rquickjs::{Coerced, Context, Ctx, Function, Object, Promise, Runtime, Value};

use super::{
    JsError, JsLimits, JsOutcome, MAX_ERROR_MESSAGE_BYTES, MAX_LOG_LINES, MAX_LOG_LINE_BYTES,
};

/// The console implementation, compiled into a run's context on the script's first use of
/// `console`.
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

/// A worker's QuickJS runtime, and the context prepared for its next run.
pub(super) struct Worker {
    limits: JsLimits,
    clock: Rc<Clock>,
    runtime: Runtime,
    next: Option<Context>,
}

impl Worker {
    pub(super) fn new(limits: JsLimits) -> Result<Self, JsError> {
        let clock = Rc::new(Clock::default());
        let runtime = new_runtime(&limits, &clock)?;
        Ok(Worker {
            limits,
            clock,
            runtime,
            next: None,
        })
    }

    /// Creates the next run's context now, while nobody waits for it.
    pub(super) fn prepare(&mut self) {
        if self.next.is_none() {
            self.next = Context::full(&self.runtime).ok();
        }
    }

    /// Runs one Function node script against `payload`; stops early (as a timeout) once
    /// `abandoned` says nobody waits for the answer.
    pub(super) fn run(
        &mut self,
        script: &str,
        payload: &serde_json::Value,
        abandoned: Abandoned,
    ) -> Result<JsOutcome, JsError> {
        let payload_json = serde_json::to_string(payload)
            .map_err(|e| JsError::Internal(format!("payload does not serialize: {e}")))?;
        let context = match self.next.take() {
            Some(context) => context,
            None => self.fresh_context()?,
        };
        let logs = Rc::new(RefCell::new(Logs::default()));

        self.clock.start(&self.limits, abandoned);
        let result = context.with(|ctx| execute(&ctx, script, &payload_json, &logs, &self.clock));
        self.clock.stop();
        drop(context);

        let damaged = matches!(
            result,
            Err(JsError::Timeout | JsError::OutOfMemory | JsError::Internal(_))
        );
        if !damaged {
            // The dropped context's objects point at each other (constructor <-> prototype), so
            // only the cycle collector frees them; doing it now keeps the next run's memory
            // budget whole and costs less than letting allocation pressure trigger it later.
            self.runtime.run_gc();
        }
        // Jobs still queued (left by the script, or finalizers the collection just queued) would
        // run inside the next run's time: start over instead.
        if damaged || self.runtime.is_job_pending() {
            self.replace_runtime()?;
        }

        let logs = std::mem::take(&mut logs.borrow_mut().lines);
        result.map(|payload| JsOutcome { payload, logs })
    }

    /// Drops the runtime (and with it anything a broken run left) and starts a new one.
    pub(super) fn replace_runtime(&mut self) -> Result<(), JsError> {
        self.next = None;
        self.runtime = new_runtime(&self.limits, &self.clock)?;
        Ok(())
    }

    fn fresh_context(&mut self) -> Result<Context, JsError> {
        match Context::full(&self.runtime) {
            Ok(context) => Ok(context),
            Err(_) => {
                // Most likely the memory limit: start over on a clean runtime once.
                self.replace_runtime()?;
                Context::full(&self.runtime).map_err(|e| {
                    JsError::Internal(format!("cannot create a JavaScript context: {e}"))
                })
            }
        }
    }
}

fn new_runtime(limits: &JsLimits, clock: &Rc<Clock>) -> Result<Runtime, JsError> {
    let runtime = Runtime::new()
        .map_err(|e| JsError::Internal(format!("cannot create a JavaScript runtime: {e}")))?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(limits.max_stack_bytes);
    let clock = Rc::clone(clock);
    runtime.set_interrupt_handler(Some(Box::new(move || clock.check())));
    Ok(runtime)
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
    logs: &Rc<RefCell<Logs>>,
    clock: &Clock,
) -> Result<serde_json::Value, JsError> {
    let fail = |e: rquickjs::Error| failure(ctx, e, clock);

    let payload = ctx.json_parse(payload_json).map_err(fail)?;
    let globals = ctx.globals();
    globals.set("payload", payload).map_err(fail)?;
    install_console(&globals, logs).map_err(fail)?;

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

/// Defines `console` as a global accessor that compiles the console on first use.
fn install_console<'js>(globals: &Object<'js>, logs: &Rc<RefCell<Logs>>) -> rquickjs::Result<()> {
    let logs = Rc::clone(logs);
    let get = move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
        let factory: Function = ctx.eval_with_options(CONSOLE_JS, sloppy("console.js"))?;
        let logs = Rc::clone(&logs);
        let sink = Function::new(ctx.clone(), move |line: String| {
            logs.borrow_mut().push(line)
        })?;
        let console: Value = factory.call((sink,))?;
        define_console(&ctx, console.clone())?;
        Ok(console)
    };
    let set = |ctx: Ctx<'js>, value: Value<'js>| define_console(&ctx, value);
    globals.prop("console", Accessor::new_get(get).set(set).configurable())
}

/// Replaces the `console` accessor with a plain (writable, non-enumerable) property, as in Node.
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
