import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { beforeEach, test } from "node:test";

import * as vscode from "vscode";

import { Baton, Share } from "../src/cli";
import { activate } from "../src/extension";
import { Deps, forkFromLink, PENDING_KEY, readShareOverHttp, shareSession, startPending } from "../src/flows";
import { CostItem, SessionItem, SessionsView } from "../src/views";
import * as stub from "./vscode";

const SHARE = "https://baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
const LINK = `vscode://baton.baton/fork?url=${encodeURIComponent(SHARE)}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "baton-vscode-"));
const log = path.join(tmp, "commands.log");
const fake = path.join(tmp, "baton");

// A stand-in for the baton CLI: records its arguments, answers as the real one would.
fs.writeFileSync(
  fake,
  `#!/usr/bin/env node
const fs = require("fs");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + "\\n");
const session = { id: "ses_01NEW", title: "Fix login", status: "active", updated_at: "2026-12-06T23:16:37Z",
  message_count: 3, git: { branch: "main" }, own: { cost_usd: 0.1234, input_tokens: 1000, output_tokens: 200 } };
const out = (v) => process.stdout.write(JSON.stringify(v));
if (process.env.FAKE_BATON_FAIL && args[0] === process.env.FAKE_BATON_FAIL) {
  process.stderr.write("error: share 3q2-7wEr9aTz_Rk1mC0x4Ab was revoked\\n"); process.exit(1);
}
if (args[0] === "whoami") out({ handle: "me", server: process.env.FAKE_BATON_SERVER || null });
else if (args[0] === "fork") { const i = args.indexOf("--restore"); if (i > 0) fs.mkdirSync(args[i + 1], { recursive: true });
  out({ ...session, restore: i > 0 ? { path: args[i + 1] } : undefined }); }
else if (args[0] === "share") out({ id: "abcdefgh12345678", url: "https://baton.example.com/share/abcdefgh12345678" });
else if (args[0] === "sessions" && args[1] === "list") out([session]);
else if (args[0] === "sessions" && args[1] === "show") out(session);
else if (args[0] === "sessions" && args[1] === "export") process.stdout.write("<!doctype html><p>the conversation</p>");
else { process.stderr.write("error: unexpected " + args.join(" ") + "\\n"); process.exit(2); }
`,
);
fs.chmodSync(fake, 0o755);

const share: Share = {
  id: "3q2-7wEr9aTz_Rk1mC0x4Ab",
  url: SHARE,
  title: "Fix login",
  git: { branch: "main" },
  message_count: 3,
  shared_by: { handle: "ada", display_name: "Ada" },
  published: "3 messages, uncommitted changes (1 file)",
};

function ran(): string[][] {
  return fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
}

function deps(readShare: (url: string) => Promise<Share> = async () => share): Deps {
  return { baton: new Baton(fake), state: new stub.Memory() as unknown as vscode.Memento, readShare, terminals: new Map() };
}

beforeEach(() => {
  stub.reset();
  fs.rmSync(log, { force: true });
  delete process.env.FAKE_BATON_FAIL;
  delete process.env.FAKE_BATON_SERVER;
  stub.settings["baton.cliPath"] = fake;
  stub.settings["baton.allowedHosts"] = ["baton.example.com"];
  stub.settings["baton.forkParent"] = path.join(tmp, "forks");
});

test("a link asks first, then forks into a new folder, opens it and starts the chat there", async () => {
  const d = deps();
  const target = path.join(tmp, "forks", "fix-login-3q2-7wer");
  stub.answers.push("Fork", target);
  await forkFromLink(d, vscode.Uri.parse(LINK));
  const [warning] = stub.called("showWarningMessage");
  assert.equal(warning[0], "Fork “Fix login”?");
  assert.deepEqual(warning[1], {
    modal: true,
    detail:
      "Shared by Ada on baton.example.com: 3 messages, uncommitted changes (1 file).\n" +
      "baton will fork it into your local baton store, restore its code into a new folder, and open a terminal running baton chat in it.\n" +
      "Nothing from the share runs on this machine until you ask the agent to.",
  });
  assert.equal(warning[2], "Fork");
  assert.equal(stub.called("showInputBox")[0][0].value, target); // the default: a new folder under the parent
  assert.deepEqual(ran(), [["whoami", "--json"], ["fork", SHARE, "--restore", target, "--json"]]);
  const [open] = stub.called("executeCommand");
  assert.deepEqual([open[0], open[1].fsPath, open[2]], ["vscode.openFolder", target, { forceNewWindow: false }]);
  assert.deepEqual(d.state.get(PENDING_KEY), [{ folder: target, session: "ses_01NEW", title: "Fix login" }]);
  // the window opened on the folder starts the terminal, once
  stub.state.workspaceFolders = [{ uri: vscode.Uri.file(target) as unknown as stub.Uri }];
  await startPending(d);
  await startPending(d);
  const terminals = stub.called("createTerminal");
  assert.deepEqual(terminals, [[{ name: "baton: Fix login", cwd: target }]]);
  assert.deepEqual((vscode.window.activeTerminal as unknown as stub.Terminal).sent, [`${fake} chat -s ses_01NEW`]);
  assert.deepEqual(d.state.get(PENDING_KEY), []);
});

test("with a folder open, the fork opens in a new window", async () => {
  stub.state.workspaceFolders = [{ uri: stub.Uri.file(tmp) }];
  const target = path.join(tmp, "forks", "second");
  stub.answers.push("Fork", target);
  await forkFromLink(deps(), vscode.Uri.parse(LINK));
  assert.deepEqual(stub.called("executeCommand")[0][2], { forceNewWindow: true });
});

test("nothing runs when the confirmation is dismissed", async () => {
  stub.answers.push(undefined);
  await forkFromLink(deps(), vscode.Uri.parse(LINK));
  assert.deepEqual(ran(), [["whoami", "--json"]]);
  assert.equal(stub.called("showInputBox").length, 0);
  assert.equal(stub.called("createTerminal").length, 0);
});

test("nothing runs when the folder question is dismissed", async () => {
  stub.answers.push("Fork", undefined);
  await forkFromLink(deps(), vscode.Uri.parse(LINK));
  assert.deepEqual(ran(), [["whoami", "--json"]]);
});

test("a host not allowed is named, and allowed only by the click", async () => {
  const other = "https://other.example.org/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
  const link = `cursor://baton.baton/fork?url=${encodeURIComponent(other)}`;
  stub.answers.push(undefined);
  await forkFromLink(deps(), vscode.Uri.parse(link));
  const [warning] = stub.called("showWarningMessage");
  assert.equal(warning[2], "Allow other.example.org and Fork");
  assert.match(warning[1].detail, /other\.example\.org is not one of your servers \(baton\.allowedHosts\): only go on if you trust this link\.$/);
  assert.deepEqual(stub.settings["baton.allowedHosts"], ["baton.example.com"]);
  assert.deepEqual(ran(), [["whoami", "--json"]]);
  stub.reset();
  stub.settings["baton.cliPath"] = fake;
  stub.settings["baton.allowedHosts"] = ["baton.example.com"];
  stub.answers.push("Allow other.example.org and Fork", path.join(tmp, "forks", "other"));
  await forkFromLink(deps(), vscode.Uri.parse(link));
  assert.deepEqual(stub.settings["baton.allowedHosts"], ["baton.example.com", "other.example.org"]);
  assert.deepEqual(ran().at(-1), ["fork", other, "--restore", path.join(tmp, "forks", "other"), "--json"]);
});

test("the server the CLI is logged in to is trusted", async () => {
  process.env.FAKE_BATON_SERVER = "https://team.example.net";
  const url = "https://team.example.net/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
  stub.answers.push(undefined);
  await forkFromLink(deps(), vscode.Uri.parse(`vscode://baton.baton/fork?url=${encodeURIComponent(url)}`));
  const [warning] = stub.called("showWarningMessage");
  assert.equal(warning[2], "Fork");
  assert.match(warning[1].detail, /into your account on https:\/\/team\.example\.net/);
});

test("an http link is refused before anything is asked", async () => {
  const url = "http://baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
  await forkFromLink(deps(), vscode.Uri.parse(`vscode://baton.baton/fork?url=${encodeURIComponent(url)}`));
  assert.deepEqual(stub.called("showErrorMessage"), [
    [`baton: refused ${url}: not https (set baton.allowInsecureLinks to open http links, e.g. from a server on this machine)`],
  ]);
  assert.equal(stub.called("showWarningMessage").length, 0);
  assert.deepEqual(ran(), [["whoami", "--json"]]);
});

test("a share without code forks without a folder and chats in this window", async () => {
  stub.answers.push("Fork");
  const d = deps(async () => ({ ...share, git: null }));
  await forkFromLink(d, vscode.Uri.parse(LINK));
  assert.deepEqual(ran(), [["whoami", "--json"], ["fork", SHARE, "--json"]]);
  assert.equal(stub.called("showInputBox").length, 0);
  assert.deepEqual(stub.called("createTerminal"), [[{ name: "baton: Fix login", cwd: undefined }]]);
});

test("a missing CLI says how to install it", async () => {
  const d = deps();
  d.baton = new Baton(path.join(tmp, "no-such-baton"));
  stub.answers.push("Copy install command");
  await forkFromLink(d, vscode.Uri.parse(LINK));
  assert.deepEqual(stub.called("showErrorMessage"), [
    [
      `baton: the baton command was not found (baton.cliPath is "${path.join(tmp, "no-such-baton")}"). Install it with \`pipx install baton\`, or set baton.cliPath to where it is.`,
      "Copy install command",
    ],
  ]);
  assert.equal(stub.clipboard.text, "pipx install baton");
});

test("a failed fork is one message with the CLI's reason", async () => {
  process.env.FAKE_BATON_FAIL = "fork";
  stub.answers.push("Fork", path.join(tmp, "forks", "failed"));
  await forkFromLink(deps(), vscode.Uri.parse(LINK));
  assert.deepEqual(stub.called("showErrorMessage"), [["baton: baton fork failed: share 3q2-7wEr9aTz_Rk1mC0x4Ab was revoked"]]);
  assert.equal(stub.called("executeCommand").length, 0);
});

test("the share is read from its server's public API; its errors are one line", async () => {
  const server = http.createServer((req, res) => {
    if (req.url === "/api/shares/3q2-7wEr9aTz_Rk1mC0x4Ab") {
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(share));
    } else {
      res.writeHead(410, { "Content-Type": "application/json" }).end(JSON.stringify({ error: { code: "gone", message: "share gone0000000 was revoked" } }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal((await readShareOverHttp(`http://127.0.0.1:${port}/share/3q2-7wEr9aTz_Rk1mC0x4Ab`)).title, "Fix login");
    await assert.rejects(readShareOverHttp(`http://127.0.0.1:${port}/share/gone0000000`), {
      message: `baton: http://127.0.0.1:${port}/share/gone0000000: share gone0000000 was revoked`,
    });
  } finally {
    server.close();
  }
  await assert.rejects(readShareOverHttp(`http://127.0.0.1:${port}/share/3q2-7wEr9aTz_Rk1mC0x4Ab`), /^Error: baton: could not reach 127\.0\.0\.1:\d+: /);
});

test("share copies the link; the view lists the repository's sessions; the status bar shows the terminal's", async () => {
  const d = deps();
  const session = (await d.baton.sessions(tmp))[0];
  await shareSession(d, session);
  assert.equal(stub.clipboard.text, "https://baton.example.com/share/abcdefgh12345678");
  assert.deepEqual(stub.called("showInformationMessage"), [["baton: share link copied: https://baton.example.com/share/abcdefgh12345678"]]);
  stub.state.workspaceFolders = [{ uri: stub.Uri.file(tmp) }];
  const items = await new SessionsView(() => d.baton).getChildren();
  assert.equal(items.length, 1);
  assert.deepEqual([items[0].label, items[0].description], ["Fix login", "3 msgs · $0.1234 · 2026-12-06 23:16"]);
  const cost = new CostItem(() => d.baton, d.terminals);
  await cost.update();
  assert.equal((cost.item as unknown as { visible: boolean }).visible, false); // no baton terminal
  const terminal = vscode.window.createTerminal({ name: "baton: Fix login" });
  d.terminals.set(terminal, "ses_01NEW");
  await cost.update();
  assert.equal(cost.item.text, "$(comment-discussion) Fix login · $0.1234");
  assert.deepEqual(ran(), [
    ["sessions", "list", "--repo", tmp, "--limit", "50", "--json"],
    ["share", "ses_01NEW", "--json"],
    ["sessions", "list", "--repo", tmp, "--limit", "50", "--json"],
    ["sessions", "show", "ses_01NEW", "--last", "0", "--json"],
  ]);
});

test("activation registers the link handler and the commands; Resume starts a terminal", async () => {
  const context = { subscriptions: [] as { dispose(): void }[], globalState: new stub.Memory() };
  const d = activate(context as unknown as vscode.ExtensionContext);
  try {
    assert.equal(stub.called("registerUriHandler").length, 1);
    assert.deepEqual([...stub.commands.registered.keys()].sort(), [
      "baton.fork", "baton.forkLink", "baton.open", "baton.refresh", "baton.restore", "baton.resume", "baton.share",
    ]);
    stub.state.workspaceFolders = [{ uri: stub.Uri.file(tmp) }];
    const item = new SessionItem((await d.baton.sessions(tmp))[0]);
    await stub.commands.registered.get("baton.resume")!(item);
    assert.deepEqual(stub.called("createTerminal").at(-1), [{ name: "baton: Fix login", cwd: tmp }]);
    assert.deepEqual((vscode.window.activeTerminal as unknown as stub.Terminal).sent, [`${fake} chat -s ses_01NEW`]);
    const panel = await stub.commands.registered.get("baton.open")!(item);
    assert.equal(panel.webview.html, "<!doctype html><p>the conversation</p>");
    assert.deepEqual(stub.called("createWebviewPanel")[0][3], { enableScripts: false, enableForms: false, localResourceRoots: [] });
  } finally {
    for (const s of context.subscriptions) s.dispose();
  }
});
