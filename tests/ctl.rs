//! `rampart ctl` as a user runs it: the real binary against an in-process
//! server (the rules fixture), asserting on exit codes, stdout and stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use rampart::cli::serve::{ServerHandle, start};
use rampart::engine::Engine;
use rampart::model::{State, policy_file};
use rampart::server::DataPlaneConfig;
use rampart::store::{AuditFilter, AuditRecord, Change, History, Outcomes, Store, StoreError};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// A server on 127.0.0.1:0, running on its own runtime while the test
/// blocks on the binary.
struct Server {
    url: String,
    _handle: ServerHandle,
    _runtime: tokio::runtime::Runtime,
}

fn fixture() -> State {
    let text = std::fs::read_to_string("tests/rules/policy.yaml").unwrap();
    policy_file::load_str(&text).unwrap()
}

fn serve(engine: Engine) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        start(listener, Arc::new(engine), DataPlaneConfig::default())
            .await
            .unwrap()
    });
    Server {
        url: format!("http://{}", handle.addr),
        _handle: handle,
        _runtime: runtime,
    }
}

fn server() -> Server {
    serve(Engine::new(fixture()))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `rampart ctl --server URL ARGS...` with `stdin`, with no
/// `RAMPART_*` settings leaking in from the environment.
fn ctl_argv(url: &str, args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(BIN)
        .args(["ctl", "--server", url])
        .args(args)
        .env_remove("RAMPART_ACTOR")
        .env_remove("RAMPART_OUTPUT")
        .env_remove("RAMPART_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `ctl_argv` with the arguments written as one line, split at spaces.
fn ctl_with(url: &str, line: &str, stdin: &str) -> Out {
    ctl_argv(url, &line.split_whitespace().collect::<Vec<_>>(), stdin)
}

fn ctl(s: &Server, line: &str) -> Out {
    ctl_with(&s.url, line, "")
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The first whitespace-separated field of each row under the header.
fn first_column(table: &str) -> Vec<&str> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// Every column starts at the same offset in every row as in the header.
fn assert_aligned(table: &str) {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    assert!(starts.len() > 1, "{table}");
    for row in lines {
        for &i in &starts[1..] {
            let bytes = row.as_bytes();
            assert!(
                bytes.get(i - 1) == Some(&b' ') && bytes.get(i).is_some_and(|b| *b != b' '),
                "column at {i} not aligned in {row:?}\n{table}"
            );
        }
    }
}

#[test]
fn role_list_is_a_sorted_aligned_table_with_counts() {
    let s = server();
    let out = ctl(&s, "role list --tenant acme");
    assert_eq!(out.code, 0, "{out:?}");
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["ROLE", "KIND", "MEMBERS", "GRANTS", "DESCRIPTION"]);
    let names = first_column(&out.stdout);
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(names.contains(&"user-admins") && names.contains(&"Administrators"));
    let editors = out
        .stdout
        .lines()
        .find(|l| l.starts_with("editors "))
        .unwrap();
    assert_eq!(
        editors.split_whitespace().collect::<Vec<_>>(),
        ["editors", "custom", "2", "2", "-"]
    );
    assert_aligned(&out.stdout);

    let out = ctl(&s, "role list --tenant nowhere");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "rampart ctl: NOT_FOUND: unknown tenant `nowhere`\n"
    );
}

#[test]
fn json_output_is_one_document_with_snake_case_fields() {
    let s = server();
    let out = ctl(&s, "--output json role list --tenant acme");
    assert_eq!(out.code, 0, "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["revision"], 1);
    let items = doc["items"].as_array().unwrap();
    let editors = items.iter().find(|r| r["role"] == "editors").unwrap();
    assert_eq!(editors["kind"], "custom");
    assert_eq!(editors["members"], 2);
    assert_eq!(editors["grants"], 2);

    // Global flags go after the noun and verb too.
    let out = ctl(&s, "user list --tenant acme -o json");
    let frank = json(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "frank")
        .cloned()
        .unwrap();
    assert_eq!(frank["status"], "inactive");
    assert_eq!(frank["display_name"], "");

    let out = ctl(&s, "-o json role create --tenant acme --role auditors");
    let doc = json(&out);
    assert_eq!(doc["revision"], 2);
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["change"]["kind"], "create_role");
    assert_eq!(doc["change"]["role"], "auditors");

    let out = ctl(&s, "group list --tenant acme --output json");
    let groups = json(&out);
    let staff = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "staff")
        .cloned()
        .unwrap();
    assert_eq!(staff["members"], serde_json::json!(["group:team"]));
}

#[test]
fn user_aliases_are_added_listed_replaced_and_cleared() {
    let s = server();
    let out = ctl(
        &s,
        "user add --tenant acme --user rick --alias spiffe://c/ns/x/sa/rick --alias E-1",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let aliases = |s: &Server| {
        let out = ctl(s, "user list --tenant acme -o json");
        let items = json(&out)["items"].as_array().unwrap().clone();
        let rick = items.iter().find(|u| u["user"] == "rick").cloned().unwrap();
        rick["aliases"].clone()
    };
    assert_eq!(
        aliases(&s),
        serde_json::json!(["E-1", "spiffe://c/ns/x/sa/rick"])
    );
    // The table has a column for them.
    let out = ctl(&s, "user list --tenant acme");
    let header = out.stdout.lines().next().unwrap();
    assert!(header.contains("ALIASES"), "{out:?}");
    let row = out.stdout.lines().find(|l| l.starts_with("rick ")).unwrap();
    assert!(row.contains("E-1,spiffe://c/ns/x/sa/rick"), "{row}");

    // A check by an alias is rick's, and the explanation says so.
    let out = ctl(
        &s,
        "check --tenant acme --subject E-1 --permission documents:view --explain",
    );
    assert!(out.stdout.contains("no_matching_grant"), "{out:?}");
    assert!(out.stdout.contains("\nuser:            rick\n"), "{out:?}");

    let out = ctl(&s, "user info --user rick --alias E-2");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(aliases(&s), serde_json::json!(["E-2"]));
    // Another field alone leaves them.
    let out = ctl(&s, "user info --user rick --display-name Rick");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(aliases(&s), serde_json::json!(["E-2"]));
    let out = ctl(&s, "user info --user rick --clear-aliases");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(aliases(&s), serde_json::json!([]));
    // Both at once is a usage error; a clash is the server's.
    let out = ctl(&s, "user info --user rick --alias x --clear-aliases");
    assert_eq!(out.code, 2, "{out:?}");
    let out = ctl(&s, "user info --user rick --alias bob");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("ALREADY_EXISTS"), "{out:?}");
    assert!(out.stderr.contains("is the id of user `bob`"), "{out:?}");
}

#[test]
fn tenant_update_changes_only_the_settings_it_names() {
    let s = server();
    let globex = |s: &Server| {
        let out = ctl(s, "-o json tenant list");
        assert_eq!(out.code, 0, "{out:?}");
        json(&out)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tenant"] == "globex")
            .cloned()
            .unwrap()
    };
    let before = globex(&s);
    assert_eq!(before["single_role_per_user"], true);
    assert_eq!(before["shared_users"], false);
    let out = ctl(
        &s,
        "tenant update --tenant globex --shared-users true --actor gina",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let after = globex(&s);
    assert_eq!(after["shared_users"], true);
    assert_eq!(after["single_role_per_user"], true, "left as it was");
    let table = ctl(&s, "tenant list").stdout;
    assert!(table.contains("SHARED_USERS"), "{table}");
}

#[test]
fn guard_settings_and_attributes_from_the_command_line() {
    let s = server();
    let out = ctl(
        &s,
        "tenant update --tenant acme --administrator-roles editors --removal-needs-all-grants true --preview-grants refuse --admin-permission create_group=documents:view,documents:edit:groups --admin-permission list_groups=documents:view",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = ctl(&s, "-o json tenant list");
    let acme = json(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .cloned()
        .unwrap();
    assert_eq!(acme["administrator_roles"], serde_json::json!(["editors"]));
    assert_eq!(acme["removal_needs_all_grants"], true);
    assert_eq!(acme["users_role_removals_only"], false, "left as it was");
    assert_eq!(acme["preview_grants"], "refuse");
    assert_eq!(acme["deprecated_grants"], "allow");
    assert_eq!(
        acme["admin_permissions"],
        serde_json::json!({
            "create_group": ["documents:view", "documents:edit:groups"],
            "list_groups": ["documents:view"],
        })
    );
    let out = ctl(&s, "tenant update --tenant acme --clear-admin-permissions");
    assert_eq!(out.code, 0, "{out:?}");
    let out = ctl(&s, "tenant update --tenant acme --preview-grants sometimes");
    assert_eq!(out.code, 2, "{out:?}");
    let out = ctl(
        &s,
        "tenant update --tenant acme --admin-permission create_group",
    );
    assert_eq!(out.code, 2, "{out:?}");

    let out = ctl(
        &s,
        "user add --tenant acme --user rick --attribute realm=ldap --attribute site=ghent",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let rick = |s: &Server| {
        let out = ctl(s, "user list --tenant acme -o json");
        json(&out)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == "rick")
            .cloned()
            .unwrap()
    };
    assert_eq!(
        rick(&s)["attributes"],
        serde_json::json!({"realm": "ldap", "site": "ghent"})
    );
    let out = ctl(&s, "user info --user rick --clear-attributes");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(rick(&s)["attributes"], serde_json::json!({}));
    let out = ctl(&s, "user info --user rick --attribute realm");
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn grant_add_as_an_administrator_shows_up_in_role_get() {
    let s = server();
    // The issue's example, word for word, once the role and the permission exist.
    let out = ctl_argv(
        &s.url,
        &[
            "catalog",
            "define",
            "CreateMachine",
            "--category",
            "Machines",
            "--description",
            "Create a machine",
        ],
        "",
    );
    assert_eq!(out.stdout, "ok revision 2\n", "{out:?}");
    let out = ctl(&s, "role create --tenant acme --role developers");
    assert_eq!(out.stdout, "ok revision 3\n", "{out:?}");
    let out = ctl(
        &s,
        "grant add --tenant acme --role developers CreateMachine --actor alice",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "ok revision 4\n");

    let out = ctl(
        &s,
        "grant add --tenant acme --role developers deny:documents:edit:* --actor alice",
    );
    assert_eq!(out.stdout, "ok revision 5\n", "{out:?}");

    let out = ctl(&s, "role get --tenant acme --role developers");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "ROLE        KIND    MEMBERS  DESCRIPTION\n\
         developers  custom  0        -\n\
         \n\
         EFFECT  PATTERN\n\
         allow   CreateMachine\n\
         deny    documents:edit:*\n"
    );
    let out = ctl(&s, "role get --tenant acme --role developers -o json");
    let doc = json(&out);
    assert_eq!(doc["revision"], 5);
    assert_eq!(doc["grants"][1]["effect"], "deny");
    assert_eq!(doc["grants"][1]["pattern"], "documents:edit:*");

    // `grant set` replaces the list in one change.
    let out = ctl(
        &s,
        "grant set --tenant acme --role developers --deny documents:view allow:CreateMachine",
    );
    assert_eq!(out.stdout, "ok revision 6\n", "{out:?}");
    let out = ctl(&s, "role get --tenant acme --role developers");
    assert!(
        out.stdout
            .ends_with("EFFECT  PATTERN\ndeny    documents:view\nallow   CreateMachine\n"),
        "{out:?}"
    );
}

#[test]
fn a_refusal_exits_1_with_the_code_and_the_rule_on_stderr() {
    let s = server();
    let out = ctl(
        &s,
        "binding assign --tenant acme --subject bob --role Administrators --actor mallory",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("rampart ctl: PERMISSION_DENIED: no escalation: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("`mallory`"), "{out:?}");

    // The top-level alias, with the actor from the environment.
    let out = Command::new(BIN)
        .args(["ctl", "--server", &s.url, "assign", "--tenant", "acme"])
        .args(["--subject", "bob", "--role", "Administrators"])
        .env("RAMPART_ACTOR", "mallory")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PERMISSION_DENIED: no escalation"),
        "{stderr}"
    );

    // Nothing changed.
    let out = ctl(&s, "binding list --tenant acme --subject bob");
    assert_eq!(first_column(&out.stdout), ["bob"], "{out:?}");
}

#[test]
fn reads_as_a_user_show_only_what_it_may_see() {
    let s = server();
    // bob holds no ACM: permission: no rows, not a refusal.
    let out = ctl(&s, "-o json role list --tenant acme --as bob");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json(&out)["items"], serde_json::json!([]), "{out:?}");
    let out = ctl(&s, "role get --tenant acme --role editors --as bob");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "rampart ctl: PERMISSION_DENIED: actor `bob` lacks `ACM:ROLE:RETRIEVE:PERMISSIONS:editors` in tenant `acme`\n"
    );
    // mallory manages users, roles and groups: she sees them all.
    let out = ctl(&s, "user list --tenant acme --actor mallory");
    assert_eq!(first_column(&out.stdout).len(), 7, "{out:?}");
    let out = ctl(&s, "group list --tenant acme --as mallory");
    assert_eq!(first_column(&out.stdout), ["admins", "staff", "team"]);
    let out = ctl(&s, "binding list --tenant acme --subject bob --as mallory");
    assert_eq!(first_column(&out.stdout), ["bob"], "{out:?}");
    // An inactive user reads nothing.
    let out = ctl(&s, "binding list --tenant acme --as frank");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not an active member"), "{out:?}");
}

#[test]
fn dry_runs_report_the_revision_and_change_nothing() {
    let s = server();
    let before = ctl(&s, "role list --tenant acme");
    let out = ctl(
        &s,
        "role create --tenant acme --role auditors --actor alice --dry-run",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("dry run: would be revision 2"));
    let change: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(change["kind"], "create_role");
    let after = ctl(&s, "role list --tenant acme");
    assert_eq!(before.stdout, after.stdout);
    assert!(!after.stdout.contains("auditors"));

    let out = ctl(
        &s,
        "-o json grant add --tenant acme --role billing machines:run:x --dry-run",
    );
    assert_eq!(json(&out)["dry_run"], true, "{out:?}");
    let out = ctl(&s, "role get --tenant acme --role billing");
    assert!(!out.stdout.contains("machines:run:x"), "{out:?}");

    // A dry run is still checked by the rules.
    let out = ctl(
        &s,
        "assign --tenant acme --subject bob --role Administrators --actor mallory --dry-run",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("PERMISSION_DENIED"), "{out:?}");
}

#[test]
fn check_prints_allow_and_deny_with_reasons_and_explains_the_chain() {
    let s = server();
    let out = ctl(
        &s,
        "check --tenant acme --subject bob --permission documents:view",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "DECISION  REASON   REVISION\nallow     granted  1\n"
    );

    let deny = "check --tenant acme --subject bob --permission billing:view";
    let out = ctl(&s, deny);
    assert_eq!(out.code, 0, "a deny is an answer: {out:?}");
    assert_eq!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["deny", "no_matching_grant", "1"]
    );
    let out = ctl(&s, &format!("{deny} --exit-code"));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("deny"), "{out:?}");
    let out = ctl(
        &s,
        "check --tenant acme --subject frank --permission documents:view --exit-code",
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("subject_inactive"), "{out:?}");

    let out = ctl(
        &s,
        "check --tenant acme --subject erin --permission documents:edit:readme --explain --exit-code",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("catalog entry:   documents:edit:?DOC?"),
        "{out:?}"
    );
    let grant = out
        .stdout
        .lines()
        .find(|l| l.starts_with("editors "))
        .unwrap();
    assert!(
        grant.ends_with("user:erin -> group:team -> group:staff"),
        "{out:?}"
    );
    assert!(grant.contains("documents:edit:*"), "{out:?}");

    let out = ctl(
        &s,
        "check --tenant acme --subject erin --permission documents:edit:readme --explain -o json",
    );
    let doc = json(&out);
    assert_eq!(doc["decision"], "allow");
    assert_eq!(doc["reason"], "granted");
    assert_eq!(
        doc["explanation"]["grants"][0]["via"],
        serde_json::json!(["user:erin", "group:team", "group:staff"])
    );

    let out = ctl(
        &s,
        "check --tenant nope --subject bob --permission documents:view",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("rampart ctl: NOT_FOUND: "),
        "{out:?}"
    );
}

#[test]
fn batch_check_answers_in_input_order_and_keeps_bad_lines_in_place() {
    let s = server();
    let input = "# tenant subject permission [id]\n\
                 acme bob documents:view b-1\n\
                 acme bob billing:view\n\
                 acme broken-line\n\
                 nope bob documents:view\n\
                 acme erin documents:edit:readme e-1\n";
    // Chunks of two: the order must survive the split too.
    let out = ctl_with(&s.url, "batch-check --chunk 2", input);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "rampart ctl: 2 of 5 items got an error\n");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 5, "{out:?}");
    let summary: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[4], r[5])).collect();
    assert_eq!(
        summary,
        [
            ("2", "b-1", "allow"),
            ("3", "-", "deny"),
            ("4", "-", "error"),
            ("5", "-", "error"),
            ("6", "e-1", "allow"),
        ]
    );
    assert_eq!(rows[1][6], "no_matching_grant");
    assert_eq!(rows[2][6], "INVALID_ARGUMENT:");
    assert_eq!(rows[3][6], "NOT_FOUND:");
    assert_aligned(&out.stdout);

    // A JSON array from stdin, as JSON.
    let input = r#"[
        {"tenant":"acme","subject":"bob","permission":"documents:view","correlation_id":"x"},
        {"tenant":"acme","subject":"bob"},
        {"tenant":"acme","subject":"frank","permission":"documents:view"}
    ]"#;
    let out = ctl_with(&s.url, "-o json batch-check -", input);
    assert_eq!(out.code, 1, "{out:?}");
    let doc = json(&out);
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["correlation_id"], "x");
    assert_eq!(items[0]["decision"], "allow");
    assert_eq!(items[1]["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(
        items[1]["error"]["message"],
        "item 2: `permission` is missing"
    );
    assert_eq!(items[2]["reason"], "subject_inactive");
    assert_eq!(doc["revision"], 1);

    // All good: exit 0.
    let out = ctl_with(&s.url, "batch-check", "acme bob documents:view\n");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn an_unreachable_server_exits_69_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = ctl_with(&url, "role list --tenant acme", "");
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("rampart ctl: cannot reach the server at {url}: ")),
        "{out:?}"
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn usage_errors_exit_2_before_any_call() {
    // No server at all: usage is checked first.
    let url = "http://127.0.0.1:9";
    let out = ctl_with(url, "grant add --role r p", "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--tenant"), "{out:?}");
    let out = ctl_with(url, "batch-check", "[not json");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a JSON array"), "{out:?}");
    let out = ctl_with(url, "batch-check", "# nothing\n");
    assert_eq!(out.code, 2, "{out:?}");
    let out = ctl_with(url, "user status --tenant t --user u asleep", "");
    assert_eq!(out.code, 2, "{out:?}");
}

/// A store in memory, just enough for the audit log.
struct AuditOnly {
    state: State,
    log: Mutex<Vec<AuditRecord>>,
}

impl AuditOnly {
    fn push(&self, mut record: AuditRecord) {
        let mut log = self.log.lock().unwrap();
        record.seq = log.len() as u64 + 1;
        log.push(record);
    }
}

impl Store for AuditOnly {
    fn load(&self) -> Result<State, StoreError> {
        Ok(self.state.clone())
    }
    fn commit_batch(&self, batch: &[Outcomes]) -> Result<(), StoreError> {
        for entry in batch {
            match entry {
                Outcomes::Applied { audit, .. } | Outcomes::Refused(audit) => {
                    self.push(audit.clone())
                }
            }
        }
        Ok(())
    }
    fn append(&self, _: &[Change]) -> Result<(), StoreError> {
        Ok(())
    }
    fn changelog(&self, _: u64, _: usize) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }
    fn history(&self) -> Result<History, StoreError> {
        Ok(History {
            id: "audit-only".into(),
            first: 1,
            last: 0,
        })
    }
    fn checkpoint_revision(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn compact(&self, _: u64) -> Result<u64, StoreError> {
        Ok(1)
    }
    fn install(&self, _: &State, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.seq > f.after_seq)
            .filter(|r| f.tenant.is_none() || r.tenant == f.tenant)
            .filter(|r| {
                f.actor
                    .as_deref()
                    .is_none_or(|a| r.actor.as_deref().unwrap_or("operator") == a)
            })
            .filter(|r| f.from_revision.is_none_or(|from| r.revision >= from))
            .filter(|r| f.to_revision.is_none_or(|to| r.revision <= to))
            .take(f.limit)
            .cloned()
            .collect())
    }
    fn checkpoint(&self, _: &State) -> Result<(), StoreError> {
        Ok(())
    }
    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.state.revision)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn audit_pages_through_changes_and_refusals() {
    let store = Arc::new(AuditOnly {
        state: fixture(),
        log: Mutex::new(Vec::new()),
    });
    let s = serve(Engine::open(store).unwrap());
    for line in [
        "role create --tenant acme --role a1 --actor alice",
        "role create --tenant acme --role a2",
        "assign --tenant acme --subject bob --role Administrators --actor mallory",
    ] {
        ctl(&s, line);
    }

    let out = ctl(&s, "audit --limit 2");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(first_column(&out.stdout), ["1", "2"], "{out:?}");
    assert!(
        out.stderr
            .contains("more entries follow: --all, or --page-token 2"),
        "{out:?}"
    );
    let out = ctl(&s, "audit --limit 2 --page-token 2");
    assert_eq!(first_column(&out.stdout), ["3"], "{out:?}");
    assert_eq!(out.stderr, "");

    let out = ctl(&s, "audit --page-size 1 --all -o json");
    assert_eq!(out.code, 0, "{out:?}");
    let doc = json(&out);
    let items = doc["items"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = items
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "applied"),
            ("", "applied"),
            ("mallory", "refused")
        ]
    );
    assert_eq!(items[0]["change"]["kind"], "create_role");
    assert_eq!(items[2]["code"], "PERMISSION_DENIED");
    assert_eq!(doc["next_page_token"], "");

    let out = ctl(&s, "audit --actor mallory -o json");
    assert_eq!(json(&out)["items"].as_array().unwrap().len(), 1, "{out:?}");
}

#[test]
fn user_list_follows_the_pages_and_stops_at_limit() {
    // More users than one server page (1000).
    let mut text = String::from("tenants:\n  - id: big\n    users:\n");
    for i in 0..1_205 {
        text.push_str(&format!("      - {{ id: u{i:05} }}\n"));
    }
    let s = serve(Engine::new(policy_file::load_str(&text).unwrap()));
    let expected: Vec<String> = (0..1_205).map(|i| format!("u{i:05}")).collect();

    let out = ctl(&s, "user list --tenant big");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(first_column(&out.stdout), expected);
    assert_eq!(out.stderr, "");

    let out = ctl(&s, "user list --tenant big --page-size 7 -o json");
    assert_eq!(out.code, 0, "{out:?}");
    let users: Vec<String> = json(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, expected);

    let out = ctl(&s, "user list --tenant big --limit 5");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(first_column(&out.stdout), expected[..5]);
    let out = ctl(&s, "user list --tenant big --limit 20 --page-size 7");
    assert_eq!(first_column(&out.stdout), expected[..20]);

    let out = ctl(&s, "user list --tenant big --page-size 10001");
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn an_audit_page_stops_at_1_mib_and_ctl_reads_on() {
    let store = Arc::new(AuditOnly {
        state: fixture(),
        log: Mutex::new(Vec::new()),
    });
    let s = serve(Engine::open(Arc::clone(&store) as Arc<dyn Store>).unwrap());
    for line in [
        "role create --tenant acme --role a1 --actor alice",
        "role create --tenant acme --role a2",
        "role create --tenant acme --role a3",
    ] {
        ctl(&s, line);
    }
    // Three records of 600 kB each: the first page holds the two that
    // pass 1 MiB, not all six.
    let big = store.log.lock().unwrap()[0].clone();
    for _ in 0..3 {
        let mut r = big.clone();
        r.outcome = rampart::model::audit::Outcome::Refused {
            code: "PERMISSION_DENIED".into(),
            message: "x".repeat(600_000),
        };
        store.push(r);
    }
    let page = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut admin = rampart::proto::admin_client::AdminClient::connect(s.url.clone())
            .await
            .unwrap();
        admin
            .list_audit_log(rampart::proto::ListAuditLogRequest::default())
            .await
            .unwrap()
            .into_inner()
    });
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(page.next_page_token, "5");

    let out = ctl(&s, "audit -o json");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = json(&out);
    assert_eq!(doc["items"].as_array().unwrap().len(), 6);
    assert_eq!(doc["next_page_token"], "");
}
