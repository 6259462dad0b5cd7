// The extension against the real baton CLI and a real `baton serve` (tests/editors starts
// them and sets BATON_E2E_*): a link forks the share with its code, the view lists the fork
// in its folder, the status bar shows its cost, Share copies a link. Skipped without them.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import * as vscode from "vscode";

import { Baton } from "../src/cli";
import { Deps, forkFromLink, readShareOverHttp, shareSession, startPending } from "../src/flows";
import { CostItem, SessionsView, showConversation } from "../src/views";
import * as stub from "./vscode";

const cli = process.env.BATON_E2E_CLI;
const share = process.env.BATON_E2E_SHARE;
const target = process.env.BATON_E2E_TARGET;

test("a share link forks, restores and opens with the real CLI", { skip: !cli || !share || !target }, async () => {
  stub.reset();
  stub.settings["baton.cliPath"] = cli;
  stub.settings["baton.allowInsecureLinks"] = true; // the test server is http on 127.0.0.1
  stub.settings["baton.allowedHosts"] = [];
  const host = new URL(share!).host;
  const deps: Deps = {
    baton: new Baton(cli!),
    state: new stub.Memory() as unknown as vscode.Memento,
    readShare: readShareOverHttp,
    terminals: new Map(),
  };
  stub.answers.push(`Allow ${host} and Fork`, target);
  await forkFromLink(deps, vscode.Uri.parse(`vscode://baton.baton/fork?url=${encodeURIComponent(share!)}`));
  assert.deepEqual(stub.called("showErrorMessage"), []);
  const [warning] = stub.called("showWarningMessage");
  assert.equal(warning[0], "Fork “Fix login”?");
  assert.match(warning[1].detail, /^Shared by owner on 127\.0\.0\.1:\d+: 1 message, 2 commits not on origin\/main, uncommitted changes \(10 files\)\.\n/);
  assert.equal(fs.readFileSync(path.join(target!, "notes.txt"), "utf8"), "untracked notes\n");
  assert.deepEqual(stub.settings["baton.allowedHosts"], [host]);
  stub.state.workspaceFolders = [{ uri: stub.Uri.file(target!) }];
  await startPending(deps);
  const [forkId] = [...deps.terminals.values()];
  assert.match(forkId, /^ses_/);
  assert.deepEqual((vscode.window.activeTerminal as unknown as stub.Terminal).sent, [`${cli} chat -s ${forkId}`]);
  const items = await new SessionsView(() => deps.baton).getChildren();
  assert.deepEqual(
    items.map((i) => [i.label, i.id]),
    [["Fix login", forkId]],
  );
  const cost = new CostItem(() => deps.baton, deps.terminals);
  await cost.update();
  assert.equal(cost.item.text, "$(comment-discussion) Fix login · $0.0000");
  const session = await deps.baton.session(forkId);
  await shareSession(deps, session);
  assert.match(stub.clipboard.text, /^http:\/\/127\.0\.0\.1:8765\/share\/[A-Za-z0-9_-]{22,}$/);
  const panel = (await showConversation(deps.baton, session)) as unknown as { webview: { html: string } };
  assert.match(panel.webview.html, /^<!doctype html>/);
  assert.ok(panel.webview.html.includes("why?"));
});
