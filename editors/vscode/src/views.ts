// The "baton" view (recent sessions of the open repository), the read-only conversation
// panel, and the status bar item of the session a baton terminal works in.
import * as vscode from "vscode";

import { Baton, Session } from "./cli";
import { report } from "./flows";

export function money(usd: number): string {
  return `$${usd.toFixed(usd >= 1 ? 2 : 4)}`;
}

export class SessionItem extends vscode.TreeItem {
  constructor(public readonly session: Session) {
    super(session.title || "(untitled)", vscode.TreeItemCollapsibleState.None);
    this.id = session.id;
    this.description = `${session.message_count} msgs · ${money(session.own.cost_usd)} · ${session.updated_at.slice(0, 16).replace("T", " ")}`;
    this.tooltip = `${session.id} (${session.status})`;
    this.contextValue = "session";
    this.command = { command: "baton.open", title: "Open Conversation", arguments: [this] };
  }
}

export class SessionsView implements vscode.TreeDataProvider<SessionItem | vscode.TreeItem> {
  private changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private baton: () => Baton) {}

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: SessionItem | vscode.TreeItem): vscode.TreeItem {
    return item;
  }

  async getChildren(): Promise<(SessionItem | vscode.TreeItem)[]> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    if (!folder) {
      return [new vscode.TreeItem("Open a folder to see its baton sessions")];
    }
    try {
      const sessions = await this.baton().sessions(folder);
      if (sessions.length === 0) {
        return [new vscode.TreeItem("No baton sessions of this repository yet")];
      }
      return sessions.map((s) => new SessionItem(s));
    } catch (error) {
      await report(error);
      return [new vscode.TreeItem("baton: could not list sessions")];
    }
  }
}

/** The conversation, read-only: the HTML page the CLI exports (the renderer of the pages). */
export async function showConversation(baton: Baton, session: Session): Promise<vscode.WebviewPanel | undefined> {
  try {
    const html = await baton.html(session.id);
    const panel = vscode.window.createWebviewPanel(
      "baton.conversation",
      session.title || session.id,
      vscode.ViewColumn.Active,
      { enableScripts: false, enableForms: false, localResourceRoots: [] },
    );
    panel.webview.html = html;
    return panel;
  } catch (error) {
    await report(error);
    return undefined;
  }
}

/** "baton: TITLE · $own" for the active terminal when baton started it for a session. */
export class CostItem {
  readonly item: vscode.StatusBarItem;

  constructor(
    private baton: () => Baton,
    private terminals: Map<vscode.Terminal, string>,
  ) {
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
    this.item.name = "baton session";
  }

  async update(): Promise<void> {
    const terminal = vscode.window.activeTerminal;
    const id = terminal ? this.terminals.get(terminal) : undefined;
    if (!id) {
      this.item.hide();
      return;
    }
    try {
      const session = await this.baton().session(id);
      this.item.text = `$(comment-discussion) ${session.title || id} · ${money(session.own.cost_usd)}`;
      this.item.tooltip = `baton session ${id}: its own cost ${money(session.own.cost_usd)} (${session.own.input_tokens + session.own.output_tokens} tokens)`;
    } catch {
      this.item.text = `$(comment-discussion) ${id}`;
      this.item.tooltip = `baton session ${id}`;
    }
    this.item.show();
  }
}
