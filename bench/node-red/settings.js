// Node-RED settings for flowd's request/reply benchmark (bench/run-all.sh), adapted from the anchor
// set-up in ../shared/anchors/node-red/settings.js: the port comes from NR_PORT.
// NR_CONTEXT selects the context store:
//   memory          -> built-in in-memory context (default store)
//   localfs         -> localfilesystem store, default cache (in-memory, flushed to disk every 30 s)
//   localfs-nocache -> localfilesystem store with cache:false (every flow.set writes the file; async API only)
// NR_USERDIR selects the user directory (flows file + context files live there).
const mode = process.env.NR_CONTEXT || 'memory';
const ctx = {
  'memory': undefined,
  'localfs': { default: { module: 'localfilesystem' } },
  'localfs-nocache': { default: { module: 'localfilesystem', config: { cache: false } } },
}[mode];
const userDir = process.env.NR_USERDIR || __dirname + '/userdir-' + mode;
module.exports = {
  userDir,
  // absolute path: a relative flowFile is resolved against process.cwd() first if a file of that name exists there
  flowFile: userDir + '/flows.json',
  flowFilePretty: true,
  credentialSecret: false,
  uiHost: '127.0.0.1',
  uiPort: parseInt(process.env.NR_PORT || '1880', 10),
  httpAdminRoot: false,          // disables editor + admin API entirely
  httpNodeRoot: '/',
  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },
  logging: { console: { level: 'warn', metrics: false, audit: false } },
  ...(ctx ? { contextStorage: ctx } : {}),
  exportGlobalContextKeys: false,
  externalModules: { autoInstall: false },
  functionExternalModules: false,
  functionTimeout: 0,
  debugMaxLength: 1000,
};
