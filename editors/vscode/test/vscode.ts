// A small stand-in for the `vscode` module: enough of the API for the extension's logic,
// recording what the extension showed and did, and answering dialogs as a test scripts.
/* eslint-disable @typescript-eslint/no-explicit-any */

export const calls: { api: string; args: any[] }[] = [];
/** What the next dialogs answer, in order (a button label, an input, or undefined = Escape). */
export const answers: any[] = [];
export const settings: Record<string, any> = {};
export const clipboard = { text: "" };
export const state = { workspaceFolders: undefined as { uri: Uri }[] | undefined };

export function reset(): void {
  calls.length = 0;
  answers.length = 0;
  for (const key of Object.keys(settings)) delete settings[key];
  clipboard.text = "";
  state.workspaceFolders = undefined;
  window.activeTerminal = undefined;
}

export function called(api: string): any[][] {
  return calls.filter((c) => c.api === api).map((c) => c.args);
}

function record(api: string, args: any[]): void {
  calls.push({ api, args });
}

function answer(api: string, args: any[]): Promise<any> {
  record(api, args);
  return Promise.resolve(answers.length ? answers.shift() : undefined);
}

export class Uri {
  constructor(
    public scheme: string,
    public authority: string,
    public path: string,
    public query: string,
    public fragment: string,
  ) {}
  get fsPath(): string {
    return this.path;
  }
  static parse(value: string): Uri {
    const u = new URL(value);
    return new Uri(u.protocol.replace(/:$/, ""), u.host, decodeURIComponent(u.pathname), u.search.replace(/^\?/, ""), u.hash.replace(/^#/, ""));
  }
  static file(path: string): Uri {
    return new Uri("file", "", path, "", "");
  }
  toString(): string {
    return `${this.scheme}://${this.authority}${this.path}${this.query ? `?${this.query}` : ""}`;
  }
}

export class EventEmitter<T> {
  private listeners: ((value: T) => void)[] = [];
  event = (listener: (value: T) => void) => {
    this.listeners.push(listener);
    return { dispose: () => undefined };
  };
  fire(value: T): void {
    for (const l of this.listeners) l(value);
  }
}

export enum TreeItemCollapsibleState {
  None = 0,
}
export class TreeItem {
  id?: string;
  description?: string;
  tooltip?: string;
  contextValue?: string;
  command?: any;
  constructor(
    public label: string,
    public collapsibleState?: TreeItemCollapsibleState,
  ) {}
}
export enum ProgressLocation {
  Notification = 15,
}
export enum ConfigurationTarget {
  Global = 1,
}
export enum StatusBarAlignment {
  Left = 1,
}
export enum ViewColumn {
  Active = -1,
}

export interface Terminal {
  name: string;
  cwd?: string;
  sent: string[];
  show(): void;
  sendText(text: string): void;
}

export const window = {
  activeTerminal: undefined as Terminal | undefined,
  showErrorMessage: (...args: any[]) => answer("showErrorMessage", args),
  showWarningMessage: (...args: any[]) => answer("showWarningMessage", args),
  showInformationMessage: (...args: any[]) => answer("showInformationMessage", args),
  showInputBox: (options: any) => answer("showInputBox", [options]),
  withProgress: (options: any, task: () => Promise<any>) => {
    record("withProgress", [options]);
    return task();
  },
  createTerminal: (options: { name: string; cwd?: string }): Terminal => {
    const terminal: Terminal = {
      name: options.name,
      cwd: options.cwd,
      sent: [],
      show: () => undefined,
      sendText: (text: string) => terminal.sent.push(text),
    };
    record("createTerminal", [options]);
    window.activeTerminal = terminal;
    return terminal;
  },
  createWebviewPanel: (...args: any[]) => {
    const panel = { webview: { html: "" }, args };
    record("createWebviewPanel", args);
    return panel;
  },
  createStatusBarItem: () => {
    const item = { text: "", tooltip: "", name: "", visible: false, show: () => (item.visible = true), hide: () => (item.visible = false), dispose: () => undefined };
    return item;
  },
  registerUriHandler: (handler: any) => {
    record("registerUriHandler", [handler]);
    return { dispose: () => undefined };
  },
  registerTreeDataProvider: (...args: any[]) => {
    record("registerTreeDataProvider", args);
    return { dispose: () => undefined };
  },
  onDidChangeActiveTerminal: () => ({ dispose: () => undefined }),
  onDidCloseTerminal: () => ({ dispose: () => undefined }),
};

export const workspace = {
  get workspaceFolders() {
    return state.workspaceFolders;
  },
  getConfiguration: (section: string) => ({
    get: <T>(key: string): T | undefined => settings[`${section}.${key}`],
    update: (key: string, value: any) => {
      record("updateSetting", [`${section}.${key}`, value]);
      settings[`${section}.${key}`] = value;
      return Promise.resolve();
    },
  }),
};

export const commands = {
  registered: new Map<string, (...args: any[]) => any>(),
  registerCommand: (name: string, run: (...args: any[]) => any) => {
    commands.registered.set(name, run);
    return { dispose: () => undefined };
  },
  executeCommand: (name: string, ...args: any[]) => {
    record("executeCommand", [name, ...args]);
    return Promise.resolve();
  },
};

export const env = {
  clipboard: {
    writeText: (text: string) => {
      clipboard.text = text;
      return Promise.resolve();
    },
  },
};

/** A Memento kept in memory (the extension's globalState). */
export class Memory {
  data = new Map<string, any>();
  get<T>(key: string): T | undefined {
    return this.data.get(key);
  }
  update(key: string, value: any): Promise<void> {
    this.data.set(key, value);
    return Promise.resolve();
  }
  keys(): readonly string[] {
    return [...this.data.keys()];
  }
}
