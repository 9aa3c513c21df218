// The Function node's `console`, compiled into a run's context the first time the script touches
// `console` (most scripts never do, so most runs never pay for compiling this).
//
// Evaluates to a factory taking `sink(line) -> bool` (false once the run's line cap is reached)
// and returning the console object. Output follows Node's `util.format`/`util.inspect` closely
// enough for debugging, always on one line: strings raw at the top level and quoted inside
// objects, `{ a: 1, b: [ 1, 2 ] }`, nesting deeper than 2 shown as `[Object]`/`[Array]`, at most
// 100 items per array/map/set and 10,000 characters per nested string, `[Circular *1]`, getters
// shown as `[Getter]` without being called, Dates as ISO strings, Errors by their stack.
(function (sink) {
  'use strict';
  var MAX_LINE = 16384, MAX_DEPTH = 2, MAX_ITEMS = 100, MAX_STRING = 10000;
  // Captured now: a script that later breaks a built-in breaks only its own logging, and each
  // call below falls back to String() if formatting throws.
  var objToString = Object.prototype.toString;
  var hasOwn = Object.prototype.hasOwnProperty;
  var keysOf = Object.keys;
  var symbolsOf = Object.getOwnPropertySymbols;
  var describe = Object.getOwnPropertyDescriptor;
  var protoOf = Object.getPrototypeOf;
  var isArray = Array.isArray;
  var fnToString = Function.prototype.toString;
  var dateGetTime = Date.prototype.getTime;
  var dateToISO = Date.prototype.toISOString;
  var regexpToString = RegExp.prototype.toString;
  var errorToString = Error.prototype.toString;
  var mapForEach = Map.prototype.forEach;
  var setForEach = Set.prototype.forEach;
  var mapSize = describe(Map.prototype, 'size').get;
  var setSize = describe(Set.prototype, 'size').get;
  var jsonStringify = JSON.stringify;
  var IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

  function tag(v) { return objToString.call(v).slice(8, -1); }

  function quote(s) {
    var q = "'";
    if (s.indexOf("'") !== -1) {
      if (s.indexOf('"') === -1) q = '"';
      else if (s.indexOf('`') === -1 && s.indexOf('${') === -1) q = '`';
    }
    var extra = '';
    if (s.length > MAX_STRING) {
      extra = '... ' + (s.length - MAX_STRING) + ' more characters';
      s = s.slice(0, MAX_STRING);
    }
    var out = q;
    for (var i = 0; i < s.length; i++) {
      var c = s[i], code = s.charCodeAt(i);
      if (c === q || c === '\\') out += '\\' + c;
      else if (c === '\n') out += '\\n';
      else if (c === '\t') out += '\\t';
      else if (c === '\r') out += '\\r';
      else if (c === '\b') out += '\\b';
      else if (c === '\f') out += '\\f';
      else if (c === '\v') out += '\\v';
      else if (code < 0x20 || code === 0x7f) out += '\\x' + (code < 16 ? '0' : '') + code.toString(16).toUpperCase();
      else out += c;
    }
    return out + q + extra;
  }

  function formatNumber(n) { return n === 0 && 1 / n < 0 ? '-0' : String(n); }

  function formatKey(k) {
    if (typeof k === 'symbol') return '[' + String(k) + ']';
    return IDENT.test(k) ? k : quote(k);
  }

  function functionText(f) {
    var name = typeof f.name === 'string' && f.name ? f.name : '';
    var src = '';
    try { src = fnToString.call(f); } catch (e) { /* native or revoked */ }
    if (src.slice(0, 5) === 'class') return '[class ' + (name || '(anonymous)') + ']';
    var kind = tag(f);
    if (kind !== 'AsyncFunction' && kind !== 'GeneratorFunction' && kind !== 'AsyncGeneratorFunction') kind = 'Function';
    return '[' + kind + (name ? ': ' + name : ' (anonymous)') + ']';
  }

  function constructorName(o) {
    var proto = protoOf(o);
    if (proto === null) return null;
    var d = describe(proto, 'constructor');
    var c = d && d.value;
    return typeof c === 'function' && typeof c.name === 'string' ? c.name : '';
  }

  // Own enumerable properties as `key: value` parts, without calling getters.
  function propertyParts(o, depth, seen, skipIndices) {
    var parts = [], keys = keysOf(o), syms = symbolsOf(o), i, k, d;
    for (i = 0; i < syms.length; i++) {
      d = describe(o, syms[i]);
      if (d && d.enumerable) keys.push(syms[i]);
    }
    for (i = 0; i < keys.length; i++) {
      k = keys[i];
      if (skipIndices && typeof k === 'string' && String(k >>> 0) === k) continue;
      d = describe(o, k);
      if (!d) continue;
      var text;
      if ('value' in d) text = inspect(d.value, depth + 1, seen);
      else text = d.get ? (d.set ? '[Getter/Setter]' : '[Getter]') : (d.set ? '[Setter]' : 'undefined');
      parts.push(formatKey(k) + ': ' + text);
      if (parts.length > MAX_ITEMS) { parts.push('... ' + (keys.length - i - 1) + ' more properties'); break; }
    }
    return parts;
  }

  function braces(prefix, open, parts, close) {
    if (parts.length === 0) return prefix + open + close;
    return prefix + open + ' ' + parts.join(', ') + ' ' + close;
  }

  function inspect(v, depth, seen) {
    switch (typeof v) {
      case 'string': return quote(v);
      case 'number': return formatNumber(v);
      case 'bigint': return String(v) + 'n';
      case 'boolean': return String(v);
      case 'undefined': return 'undefined';
      case 'symbol': return String(v);
      case 'function':
        if (keysOf(v).length === 0) return functionText(v);
        break;
    }
    if (v === null) return 'null';
    for (var s = 0; s < seen.length; s++) if (seen[s] === v) return '[Circular *1]';
    var kind = tag(v);
    if (kind === 'Date') {
      var t = dateGetTime.call(v);
      return t !== t ? 'Invalid Date' : dateToISO.call(v);
    }
    if (kind === 'RegExp') return regexpToString.call(v);
    if (kind === 'Error' || v instanceof Error) {
      var stack = v.stack, head = errorToString.call(v);
      if (typeof stack !== 'string' || stack === '') return depth > 0 ? '[' + head + ']' : head;
      return stack.slice(0, head.length) === head ? stack.replace(/\s+$/, '') : head + '\n' + stack.replace(/\s+$/, '');
    }
    if (typeof v === 'function') {
      if (depth > MAX_DEPTH) return functionText(v);
      seen.push(v);
      var fparts = propertyParts(v, depth, seen, false);
      seen.pop();
      return braces(functionText(v) + ' ', '{', fparts, '}');
    }
    if (kind === 'Number' || kind === 'String' || kind === 'Boolean' || kind === 'BigInt' || kind === 'Symbol') {
      try { return '[' + kind + ': ' + inspect(v.valueOf(), depth + 1, seen) + ']'; } catch (e) { /* fall through */ }
    }
    var name = constructorName(v);
    var arrayLike = isArray(v) || kind === 'Arguments';
    var typed = !arrayLike && ArrayBuffer.isView(v) && kind !== 'DataView';
    if (depth > MAX_DEPTH) {
      if (arrayLike) return '[Array]';
      return '[' + (name || (name === null ? 'Object: null prototype' : 'Object')) + ']';
    }
    seen.push(v);
    try {
      var parts = [], i, n;
      if (arrayLike || typed) {
        var len = v.length, holes = 0;
        var flush = function () {
          if (holes) parts.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>');
          holes = 0;
        };
        for (i = 0, n = Math.min(len, MAX_ITEMS); i < n; i++) {
          if (!typed && !hasOwn.call(v, i)) { holes++; continue; }
          flush();
          parts.push(inspect(v[i], depth + 1, seen));
        }
        flush();
        if (len > MAX_ITEMS) parts.push('... ' + (len - MAX_ITEMS) + ' more item' + (len - MAX_ITEMS > 1 ? 's' : ''));
        if (!typed) parts = parts.concat(propertyParts(v, depth, seen, true));
        var aprefix = typed ? (name || kind) + '(' + len + ') '
          : kind === 'Arguments' ? '[Arguments] '
          : name === 'Array' ? '' : (name || 'Array') + '(' + len + ') ';
        return braces(aprefix, '[', parts, ']');
      }
      if (kind === 'Map' || kind === 'Set') {
        var size = (kind === 'Map' ? mapSize : setSize).call(v), count = 0;
        var each = function (value, key) {
          if (count++ < MAX_ITEMS) {
            parts.push(kind === 'Map'
              ? inspect(key, depth + 1, seen) + ' => ' + inspect(value, depth + 1, seen)
              : inspect(value, depth + 1, seen));
          }
        };
        (kind === 'Map' ? mapForEach : setForEach).call(v, each);
        if (size > MAX_ITEMS) parts.push('... ' + (size - MAX_ITEMS) + ' more items');
        parts = parts.concat(propertyParts(v, depth, seen, false));
        return braces((name || kind) + '(' + size + ') ', '{', parts, '}');
      }
      if (kind === 'WeakMap' || kind === 'WeakSet') return (name || kind) + ' { <items unknown> }';
      if (kind === 'ArrayBuffer') return braces((name || kind) + ' ', '{', ['byteLength: ' + v.byteLength], '}');
      parts = propertyParts(v, depth, seen, false);
      var prefix;
      if (name === null) prefix = '[Object: null prototype] ';
      else if (name === 'Object' || name === '') prefix = kind !== 'Object' ? kind + ' ' : '';
      else prefix = name + ' ';
      return braces(prefix, '{', parts, '}');
    } finally {
      seen.pop();
    }
  }

  function safeInspect(v) {
    try { return inspect(v, 0, []); } catch (e) {
      try { return String(v); } catch (e2) { return '[unprintable value]'; }
    }
  }

  function plain(v) {
    if (typeof v === 'string') return v;
    return safeInspect(v);
  }

  // util.format: printf-like directives only when a string is followed by more arguments.
  function format(args) {
    var first = args[0], out = '', a = 0;
    if (typeof first === 'string' && args.length > 1) {
      a = 1;
      var last = 0;
      for (var i = 0; i < first.length - 1; i++) {
        if (first[i] !== '%') continue;
        var d = first[i + 1], text = null;
        if (d === '%') { out += first.slice(last, i) + '%'; last = i + 2; i++; continue; }
        if (a >= args.length) continue;
        var arg = args[a];
        switch (d) {
          case 's':
            text = typeof arg === 'string' ? arg
              : typeof arg === 'bigint' ? String(arg) + 'n'
              : typeof arg === 'number' ? formatNumber(arg)
              : (typeof arg === 'object' && arg !== null) || typeof arg === 'function' ? safeInspect(arg)
              : String(arg);
            break;
          case 'd': case 'i': case 'f':
            if (typeof arg === 'bigint') text = d === 'f' ? String(Number(arg)) : String(arg) + 'n';
            else if (typeof arg === 'symbol') text = 'NaN';
            else if (d === 'd') text = formatNumber(Number(arg));
            else if (d === 'i') text = formatNumber(parseInt(arg));
            else text = formatNumber(parseFloat(arg));
            break;
          case 'j':
            try { text = jsonStringify(arg); } catch (e) { text = '[Circular]'; }
            if (text === undefined) text = 'undefined';
            break;
          case 'o': case 'O':
            text = safeInspect(arg);
            break;
          case 'c':
            text = '';
            break;
        }
        if (text === null) continue;
        out += first.slice(last, i) + text;
        last = i + 2;
        i++;
        a++;
      }
      out += first.slice(last);
    }
    for (; a < args.length; a++) out += (out === '' && a === 0 ? '' : ' ') + plain(args[a]);
    return out;
  }

  var full = false;
  function emit(text) {
    if (full) return;
    if (text.length > MAX_LINE) text = text.slice(0, MAX_LINE);
    full = !sink(text);
  }
  function writer() {
    return function () { if (!full) emit(format(arguments)); };
  }

  var console = {
    log: writer(),
    info: writer(),
    warn: writer(),
    error: writer(),
    debug: writer(),
    trace: function () { if (!full) emit('Trace' + (arguments.length ? ': ' + format(arguments) : '')); },
    dir: function (v) { if (!full) emit(safeInspect(v)); },
    assert: function (ok) {
      if (ok || full) return;
      var rest = Array.prototype.slice.call(arguments, 1);
      emit('Assertion failed' + (rest.length ? ': ' + format(rest) : ''));
    },
  };
  return console;
})
