// The baton extension: `<scheme>://baton.baton/fork?url=SHARE_URL` links, the sessions of the
// open repository, and the session a baton terminal works in. No telemetry: it talks only to
// the baton CLI and, to show what a link will fork, to the public share the link names.
import * as vscode from "vscode";

import { Baton } from "./cli";
import {
  cliPath,
  Deps,
  forkFromLink,
  forkSession,
  readShareOverHttp,
  restoreSession,
  resumeSession,
  shareSession,
  startPending,
} from "./flows";
import { CostItem, SessionItem, SessionsView, showConversation } from "./views";

export function activate(context: vscode.ExtensionContext): Deps {
  const deps: Deps = {
    baton: new Baton(cliPath()),
    state: context.globalState,
    readShare: readShareOverHttp,
    terminals: new Map(),
  };
  const baton = (): Baton => {
    deps.baton.cli = cliPath();
    return deps.baton;
  };
  const view = new SessionsView(baton);
  const cost = new CostItem(baton, deps.terminals);
  const timer = setInterval(() => void cost.update(), 15_000);
  const on = (command: string, run: (item: SessionItem) => unknown): vscode.Disposable =>
    vscode.commands.registerCommand(command, (item: SessionItem) => {
      baton();
      return run(item);
    });
  context.subscriptions.push(
    vscode.window.registerUriHandler({
      handleUri: (uri) => {
        baton();
        return forkFromLink(deps, uri);
      },
    }),
    vscode.window.registerTreeDataProvider("baton.sessions", view),
    vscode.commands.registerCommand("baton.refresh", () => view.refresh()),
    on("baton.open", (item) => showConversation(deps.baton, item.session)),
    on("baton.resume", (item) => {
      resumeSession(deps, item.session);
      void cost.update();
    }),
    on("baton.fork", (item) => forkSession(deps, item.session)),
    on("baton.share", (item) => shareSession(deps, item.session)),
    on("baton.restore", (item) => restoreSession(deps, item.session)),
    vscode.commands.registerCommand("baton.forkLink", async () => {
      const url = await vscode.window.showInputBox({ prompt: "A baton share URL (https://HOST/share/ID)" });
      if (url) {
        await forkFromLink(deps, vscode.Uri.parse(`vscode://baton.baton/fork?url=${encodeURIComponent(url.trim())}`));
      }
    }),
    vscode.window.onDidChangeActiveTerminal(() => void cost.update()),
    vscode.window.onDidCloseTerminal((t) => {
      deps.terminals.delete(t);
      void cost.update();
    }),
    cost.item,
    { dispose: () => clearInterval(timer) },
  );
  void startPending(deps).then(() => cost.update());
  return deps;
}

export function deactivate(): void {}
