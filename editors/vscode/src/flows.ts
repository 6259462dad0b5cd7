// What the extension does, over the vscode API and the baton CLI: fork from a link (asked
// first, always), resume, share, restore. Every failure is one message.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";

import { Baton, CliError, CliMissing, INSTALL_HINT, Session, Share } from "./cli";
import { folderName, LinkError, parseForkLink, shellQuote } from "./links";

/** A terminal to start in a window opened on `folder` (the fork's code): kept in globalState. */
export interface Pending {
  folder: string;
  session: string;
  title: string;
}
export const PENDING_KEY = "baton.pendingTerminals";

export interface Deps {
  baton: Baton;
  state: vscode.Memento;
  /** The public share behind a URL (title, who shared it, whether it has code). */
  readShare: (url: string) => Promise<Share>;
  /** Terminals the extension started, by session: the status bar reads it. */
  terminals: Map<vscode.Terminal, string>;
}

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("baton");
}

export function cliPath(): string {
  return config().get<string>("cliPath") || "baton";
}

export function forkParent(): string {
  const configured = config().get<string>("forkParent") || "";
  const home = os.homedir();
  if (!configured) {
    return path.join(home, "baton-forks");
  }
  return configured.startsWith("~") ? path.join(home, configured.slice(1)) : configured;
}

/** A free folder name under the parent: NAME, NAME-2, NAME-3… */
export function freeFolder(parent: string, name: string): string {
  let candidate = path.join(parent, name);
  for (let n = 2; fs.existsSync(candidate); n++) {
    candidate = path.join(parent, `${name}-${n}`);
  }
  return candidate;
}

/** Show one failure as one message; a missing CLI says how to install it. */
export async function report(error: unknown): Promise<void> {
  if (error instanceof CliMissing) {
    const copy = "Copy install command";
    const picked = await vscode.window.showErrorMessage(error.message, copy);
    if (picked === copy) {
      await vscode.env.clipboard.writeText(INSTALL_HINT);
    }
    return;
  }
  const message =
    error instanceof LinkError || error instanceof CliError
      ? error.message
      : `baton: ${error instanceof Error ? error.message : String(error)}`;
  await vscode.window.showErrorMessage(message);
}

/** The public share at `url`, read from its server's API (no credentials are sent). */
export async function readShareOverHttp(url: string): Promise<Share> {
  const parsed = new URL(url);
  const api = `${parsed.origin}/api/shares/${parsed.pathname.split("/").pop()}`;
  let response: Response;
  try {
    response = await fetch(api, { redirect: "error", signal: AbortSignal.timeout(30_000) });
  } catch (error) {
    throw new CliError(`baton: could not reach ${parsed.host}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const body = (await response.json().catch(() => null)) as (Share & { error?: { message?: string } }) | null;
  if (!response.ok || !body) {
    const why = body?.error?.message ?? `HTTP ${response.status}`;
    throw new CliError(`baton: ${url}: ${why}`);
  }
  return body;
}

/** A `…/fork?url=SHARE_URL` link: check it, say what will happen, ask, then fork. */
export async function forkFromLink(deps: Deps, uri: vscode.Uri): Promise<void> {
  try {
    const server = await deps.baton.server();
    const settings = config();
    const link = parseForkLink(uri.path, uri.query, {
      allowedHosts: settings.get<string[]>("allowedHosts") ?? [],
      allowInsecure: settings.get<boolean>("allowInsecureLinks") ?? false,
      server,
    });
    const share = await deps.readShare(link.url);
    const by = share.shared_by?.display_name || share.shared_by?.handle || "someone";
    const where = server ? `your account on ${server}` : "your local baton store";
    const steps = [
      `Shared by ${by} on ${link.host}: ${share.published || `${share.message_count} message(s)`}.`,
      `baton will fork it into ${where}${share.git ? ", restore its code into a new folder" : ""}, and open a terminal running baton chat in it.`,
      "Nothing from the share runs on this machine until you ask the agent to.",
    ];
    if (!link.known) {
      steps.push(`${link.host} is not one of your servers (baton.allowedHosts): only go on if you trust this link.`);
    }
    const go = link.known ? "Fork" : `Allow ${link.host} and Fork`;
    const picked = await vscode.window.showWarningMessage(
      `Fork “${share.title || link.shareId}”?`,
      { modal: true, detail: steps.join("\n") },
      go,
    );
    if (picked !== go) {
      return;
    }
    if (!link.known) {
      const hosts = settings.get<string[]>("allowedHosts") ?? [];
      await settings.update("allowedHosts", [...hosts, link.host], vscode.ConfigurationTarget.Global);
    }
    await forkAndOpen(deps, link.url, share.title, share.git !== null && share.git !== undefined, link.shareId);
  } catch (error) {
    await report(error);
  }
}

/** Fork `source` (a share URL or a session id), restore its code when it has some, open it. */
export async function forkAndOpen(deps: Deps, source: string, title: string, hasCode: boolean, id: string): Promise<void> {
  let dir: string | null = null;
  if (hasCode) {
    const suggested = freeFolder(forkParent(), folderName(title, id));
    const answer = await vscode.window.showInputBox({
      title: "baton: where should the fork's code go?",
      prompt: "A new folder (it must not exist, or be empty)",
      value: suggested,
      ignoreFocusOut: true,
      validateInput: (value) => checkFolder(value),
    });
    if (answer === undefined) {
      return;
    }
    dir = path.resolve(answer.trim());
    fs.mkdirSync(path.dirname(dir), { recursive: true });
  }
  const forked = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `baton: forking ${title || id}…` },
    () => deps.baton.fork(source, dir),
  );
  await openSession(deps, forked.id, forked.title || title, dir);
}

export function checkFolder(value: string): string | undefined {
  const dir = value.trim();
  if (!dir) {
    return "Give a folder";
  }
  if (!path.isAbsolute(dir)) {
    return "Give a full path";
  }
  if (fs.existsSync(dir) && (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0)) {
    return `${dir} is not empty: give a new folder`;
  }
  return undefined;
}

/** The session's terminal: in `folder` (opened in a window of its own), else here. */
export async function openSession(deps: Deps, session: string, title: string, folder: string | null): Promise<void> {
  const here = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (folder === null || (here && path.resolve(here) === path.resolve(folder))) {
    startTerminal(deps, session, title, folder ?? here);
    return;
  }
  const pending = deps.state.get<Pending[]>(PENDING_KEY) ?? [];
  await deps.state.update(PENDING_KEY, [...pending.filter((p) => p.folder !== folder), { folder, session, title }]);
  await vscode.commands.executeCommand("vscode.openFolder", vscode.Uri.file(folder), {
    forceNewWindow: vscode.workspace.workspaceFolders !== undefined && vscode.workspace.workspaceFolders.length > 0,
  });
}

/** In a window opened on a fork's folder: the terminal it was opened for. */
export async function startPending(deps: Deps): Promise<void> {
  const pending = deps.state.get<Pending[]>(PENDING_KEY) ?? [];
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => path.resolve(f.uri.fsPath));
  const mine = pending.filter((p) => folders.includes(path.resolve(p.folder)));
  if (mine.length === 0) {
    return;
  }
  await deps.state.update(
    PENDING_KEY,
    pending.filter((p) => !mine.includes(p)),
  );
  for (const p of mine) {
    startTerminal(deps, p.session, p.title, p.folder);
  }
}

export function startTerminal(deps: Deps, session: string, title: string, cwd: string | undefined): vscode.Terminal {
  const terminal = vscode.window.createTerminal({ name: `baton: ${title || session}`, cwd });
  deps.terminals.set(terminal, session);
  terminal.show();
  terminal.sendText(`${shellQuote(cliPath())} chat -s ${session}`);
  return terminal;
}

export async function shareSession(deps: Deps, session: Session): Promise<void> {
  try {
    const share = await deps.baton.share(session.id);
    await vscode.env.clipboard.writeText(share.url);
    await vscode.window.showInformationMessage(`baton: share link copied: ${share.url}`);
  } catch (error) {
    await report(error);
  }
}

export async function restoreSession(deps: Deps, session: Session): Promise<void> {
  try {
    if (!session.git) {
      throw new CliError(`baton: ${session.title || session.id} has no code to restore (it was not started in a git repository)`);
    }
    const answer = await vscode.window.showInputBox({
      title: "baton: restore the code into",
      prompt: "A new folder (it must not exist, or be empty)",
      value: freeFolder(forkParent(), folderName(session.title, session.id)),
      ignoreFocusOut: true,
      validateInput: (value) => checkFolder(value),
    });
    if (answer === undefined) {
      return;
    }
    const dir = path.resolve(answer.trim());
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const done = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "baton: restoring…" },
      () => deps.baton.restore(session.id, dir),
    );
    const open = "Open Folder";
    const picked = await vscode.window.showInformationMessage(`baton: restored into ${done.path}`, open);
    if (picked === open) {
      await vscode.commands.executeCommand("vscode.openFolder", vscode.Uri.file(done.path), { forceNewWindow: true });
    }
  } catch (error) {
    await report(error);
  }
}

export async function forkSession(deps: Deps, session: Session): Promise<void> {
  try {
    await forkAndOpen(deps, session.id, session.title, Boolean(session.git), session.id);
  } catch (error) {
    await report(error);
  }
}

export function resumeSession(deps: Deps, session: Session): void {
  startTerminal(deps, session.id, session.title, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);
}
