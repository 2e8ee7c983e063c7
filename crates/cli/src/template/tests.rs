//! Templates rendered as Go's text/template renders them (the expected
//! strings are what docker 28 prints for the same data), the table layout
//! of Go's tabwriter, and bad templates refused.

use super::*;

fn data() -> Val {
    Val::parse_json(
        r#"{"Name":"/web","State":{"Status":"running","Running":true,"Pid":42,"ExitCode":0},
        "Config":{"Env":["A=1","B=2"],"Labels":{"b":"2","a":"1"},"Cmd":null,"Hostname":"h"},
        "Mounts":[{"Type":"volume","Name":"v1"},{"Type":"bind","Name":""}],
        "Count":3,"Ratio":0.25,"Empty":"","Nested":{"x":{"y":"deep"}}}"#,
    )
    .expect("json")
}

fn run(t: &str) -> std::result::Result<String, String> {
    parse(t)
        .map_err(|e| e.to_string())?
        .execute(&data(), Env::default())
}

#[test]
fn fields_functions_and_control_flow_render_like_go() {
    for (t, want) in [
        ("{{.Name}}", "/web"),
        ("{{ .State.Pid }}", "42"),
        ("{{.State}}", "map[ExitCode:0 Pid:42 Running:true Status:running]"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Missing.Deeper}}", "<no value>"),
        ("{{json .Config.Labels}}", r#"{"b":"2","a":"1"}"#),
        ("{{json .Config.Cmd}}", "null"),
        ("{{json .Name}}", r#""/web""#),
        ("{{index .Config.Labels \"a\"}}", "1"),
        ("{{index .Config.Labels \"zz\"}}", ""),
        ("{{index .Config.Env 1}}", "B=2"),
        ("{{(index .Mounts 0).Name}}", "v1"),
        ("{{index .Nested \"x\" \"y\"}}", "deep"),
        ("{{join .Config.Env \",\"}}", "A=1,B=2"),
        ("{{split \"a:b:c\" \":\"}}", "[a b c]"),
        ("{{index (split .Config.Hostname \"\") 0}}", "h"),
        ("{{upper .Name}} {{lower \"ABC\"}}", "/WEB abc"),
        ("{{title \"hello wide world\"}}", "Hello Wide World"),
        ("{{title \"foo-bar_baz\"}}", "Foo-Bar_baz"),
        ("{{pad .Name 2 1}}|", "  /web |"),
        ("{{pad .Empty 2 1}}|", "|"),
        ("{{truncate .Name 2}}", "/w"),
        ("{{truncate .Name 10}}", "/web"),
        ("{{println .Name .Count}}", "/web 3\n"),
        ("{{print .Name .Count}}", "/web3"),
        ("{{print 1 2}}", "1 2"),
        ("{{printf \"%s=%d %5s|%-4d|%q %v %.2f %t %x\" .Name .Count \"ab\" 7 \"q\" .Ratio .Ratio true 255}}", "/web=3    ab|7   |\"q\" 0.25 0.25 true ff"),
        ("{{printf \"%d\" \"x\"}}", "%!d(string=x)"),
        ("{{printf \"%s\"}}", "%!s(MISSING)"),
        ("{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", "2 4 2"),
        ("{{slice .Name 1 3}}", "we"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if .Empty}}x{{else if eq .Count 3}}three{{else}}y{{end}}", "three"),
        ("{{if and .State.Running (gt .Count 2) (not .Empty)}}yes{{end}}", "yes"),
        ("{{or .Empty .Missing \"fallback\"}}", "fallback"),
        ("{{and .Count .Empty}}|", "|"),
        ("{{if ne .Name \"/db\"}}ne{{end}} {{if lt 1 2}}lt{{end}} {{if ge .Count 3}}ge{{end}}", "ne lt ge"),
        ("{{if eq .Name \"/a\" \"/web\"}}any{{end}}", "any"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
        ("{{with .Missing}}x{{else}}none{{end}}", "none"),
        ("{{with .Empty}}x{{else with .Name}}{{.}}{{end}}", "/web"),
        ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
        ("{{range .Nothing}}x{{else}}empty{{end}}", "empty"),
        ("{{range .Mounts}}{{if eq .Type \"bind\"}}{{continue}}{{end}}{{.Name}}{{end}}", "v1"),
        ("{{range .Config.Env}}{{.}}{{break}}{{end}}", "A=1"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        ("{{$n := .Name}}{{with .State}}{{$n}} {{.Pid}} {{$.Count}}{{end}}", "/web 42 3"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
        ("{{.Config.Labels.a}}", "1"),
        ("{{.Name | printf \"%s!\"}}", "/web!"),
        ("{{.Name | upper | printf \"<%s>\"}}", "</WEB>"),
        ("a {{- \" b \" -}} c", "a b c"),
        ("{{/* nothing */}}x", "x"),
        ("{{html \"<a&b>\"}} {{js \"it's\"}} {{urlquery \"a b&c\"}}", "&lt;a&amp;b&gt; it\\'s a+b%26c"),
        ("{{json .}}", r#"{"Name":"/web","State":{"Status":"running","Running":true,"Pid":42,"ExitCode":0},"Config":{"Env":["A=1","B=2"],"Labels":{"b":"2","a":"1"},"Cmd":null,"Hostname":"h"},"Mounts":[{"Type":"volume","Name":"v1"},{"Type":"bind","Name":""}],"Count":3,"Ratio":0.25,"Empty":"","Nested":{"x":{"y":"deep"}}}"#),
    ] {
        assert_eq!(run(t).as_deref(), Ok(want), "{t}");
    }
}

#[test]
fn bad_templates_and_bad_calls_are_errors() {
    for (t, why) in [
        ("{{.Name", "unclosed action"),
        ("{{nosuch .Name}}", "function \"nosuch\" not defined"),
        ("{{upper .Count}}", "expected string; got int"),
        ("{{join .Name \",\"}}", "expected []string"),
        ("{{index .Config.Env 5}}", "index out of range: 5"),
        ("{{len .Count}}", "len of type int"),
        (
            "{{.Name.First}}",
            "can't evaluate field First in type string",
        ),
        ("{{.Name 1}}", "cannot be invoked as function"),
        ("{{eq .Config.Env 1}}", "non-comparable"),
        ("{{lt true false}}", "invalid type for comparison"),
        ("{{range .Name}}{{end}}", "range can't iterate over /web"),
        ("{{$y}}", "undefined variable"),
        ("{{$y = 1}}", "undefined variable"),
        (
            "{{pad .Name 1}}",
            "wrong number of args for pad: want 3 got 2",
        ),
        ("{{truncate .Name -1}}", "slice bounds out of range"),
        ("{{\"x\" 1}}", "can't give argument to non-function"),
    ] {
        let e = run(t).expect_err(t);
        assert!(e.contains(why), "{t}: {e}");
    }
}

fn ps_listing() -> (Vec<Val>, Vec<std::collections::BTreeMap<String, String>>) {
    let rows = vec![
        Val::map([
            ("ID", Val::str("aaaaaaaaaaaa")),
            ("Names", Val::str("web")),
            ("Status", Val::str("Up 2 seconds")),
            ("Ports", Val::str("")),
        ]),
        Val::map([
            ("ID", Val::str("bbbbbbbbbbbb")),
            ("Names", Val::str("database-primary")),
            ("Status", Val::str("Exited (0) 3 minutes ago")),
            ("Ports", Val::str("0.0.0.0:8080->80/tcp")),
        ]),
    ];
    let labels = vec![
        [("com.example.tier".to_string(), "front".to_string())].into(),
        Default::default(),
    ];
    (rows, labels)
}

const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
];

fn ps_render(format: Option<&str>) -> std::result::Result<String, String> {
    let (rows, labels) = ps_listing();
    let method = |i: usize, name: &str, args: &[Val]| -> Option<std::result::Result<Val, String>> {
        (name == "Label").then(|| {
            let key = args.first().and_then(Val::as_str).unwrap_or_default();
            Ok(Val::str(labels[i].get(key).cloned().unwrap_or_default()))
        })
    };
    let listing = Listing {
        type_name: "*formatter.ContainerContext",
        headers: HEADERS,
        method: Some(&method),
        exec_error: "failed to execute template",
    };
    Format::parse(format, "{{.ID}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}")
        .render(&rows, &listing)
        .map_err(|e| e.to_string())
}

#[test]
fn tables_align_like_dockers_tabwriter() {
    // Columns at least 10 wide, 3 spaces after the widest cell; the last
    // column is not padded; an empty cell is all padding.
    assert_eq!(
        ps_render(None).expect("renders"),
        "CONTAINER ID   STATUS                     PORTS                  NAMES\n\
         aaaaaaaaaaaa   Up 2 seconds                                      web\n\
         bbbbbbbbbbbb   Exited (0) 3 minutes ago   0.0.0.0:8080->80/tcp   database-primary\n"
    );
    assert_eq!(
        ps_render(Some("table {{.Names}}\\t{{.Label \"com.example.tier\"}}")).expect("renders"),
        "NAMES              tier\nweb                front\ndatabase-primary   \n"
    );
    assert_eq!(
        ps_render(Some("{{.Names}}: {{.Label \"com.example.tier\"}}")).expect("renders"),
        "web: front\ndatabase-primary: \n"
    );
    assert_eq!(
        ps_render(Some("table {{upper .Names}}")).expect("renders"),
        "NAMES\nWEB\nDATABASE-PRIMARY\n"
    );
    assert_eq!(
        ps_render(Some("{{.ID}}\\t{{.Names}}")).expect("renders"),
        "aaaaaaaaaaaa\tweb\nbbbbbbbbbbbb\tdatabase-primary\n"
    );
    // A row marshals itself as Go's json.Marshal does: HTML escaped.
    assert_eq!(
        ps_render(Some("json")).expect("renders"),
        "{\"ID\":\"aaaaaaaaaaaa\",\"Names\":\"web\",\"Status\":\"Up 2 seconds\",\"Ports\":\"\"}\n\
         {\"ID\":\"bbbbbbbbbbbb\",\"Names\":\"database-primary\",\"Status\":\"Exited (0) 3 minutes ago\",\"Ports\":\"0.0.0.0:8080-\\u003e80/tcp\"}\n"
    );
    // A row's fields are fixed: another is an error naming the row's type.
    let e = ps_render(Some("{{.Nope}}")).expect_err("unknown field");
    assert!(
        e.contains("can't evaluate field Nope in type *formatter.ContainerContext"),
        "{e}"
    );
    assert!(e.starts_with("failed to execute template: "), "{e}");
    // A bad template fails even without rows.
    let listing = Listing {
        type_name: "x",
        headers: HEADERS,
        method: None,
        exec_error: "template parsing error",
    };
    assert!(Format::parse(Some("{{.ID"), "")
        .render(&[], &listing)
        .is_err());
    assert_eq!(
        Format::parse(Some("table"), "{{.ID}}\t{{.Names}}")
            .render(&[], &listing)
            .expect("header only"),
        "CONTAINER ID   NAMES\n"
    );
}

#[test]
fn the_tab_writer_lays_out_blocks_of_columns() {
    // Lines without a tab end a block: the columns after them are sized
    // on their own.
    assert_eq!(
        tabwrite("a\tbbbbbbbbbbbbbbbb\tc\nno tabs here\nxx\ty\tz\n", 4, 1),
        "a   bbbbbbbbbbbbbbbb c\nno tabs here\nxx  y   z\n"
    );
    assert_eq!(tabwrite("", 10, 3), "");
    assert_eq!(tabwrite("x\n", 10, 3), "x\n");
    assert_eq!(tabwrite("a\t\n", 10, 3), format!("a{}\n", " ".repeat(9)));
}

#[test]
fn go_field_names_reach_the_json_keys_they_are_sent_under() {
    let v = Val::parse_json(
        r#"{"Id":"c0ffee","Server":{"ApiVersion":"1.48","Version":"28"},
        "HostConfig":{"CpuShares":512,"NanoCpus":0,"Dns":["1.1.1.1"],
        "PortBindings":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}},
        "Labels":{"Id":"label"}}"#,
    )
    .expect("json");
    let run = |t: &str| {
        parse(t)
            .expect("parses")
            .execute(&v, Env::default())
            .expect("runs")
    };
    for (t, want) in [
        ("{{.ID}}", "c0ffee"),
        ("{{.Id}}", "c0ffee"),
        ("{{.Server.APIVersion}}", "1.48"),
        ("{{.Server.ApiVersion}}", "1.48"),
        (
            "{{.HostConfig.CPUShares}} {{.HostConfig.NanoCPUs}}",
            "512 0",
        ),
        ("{{.HostConfig.DNS}}", "[1.1.1.1]"),
        (
            "{{range $p, $b := .HostConfig.PortBindings}}{{(index $b 0).HostIP}}{{end}}",
            "0.0.0.0",
        ),
        // A name that is no Go field's stays missing.
        ("{{.Server.Apiversion}}", "<no value>"),
    ] {
        assert_eq!(run(t), want, "{t}");
    }
    // A listing row's fields are fixed: the JSON spelling of a Go name is
    // not one of them.
    let env = Env {
        strict: Some("*formatter.ContainerContext"),
        ..Env::default()
    };
    let row = Val::map([("ID", Val::str("c0ffee"))]);
    let t = parse("{{.Id}}").expect("parses");
    assert_eq!(
        t.execute(&row, env).expect_err("no such field"),
        "template: :1:2: executing \"\" at <.Id>: can't evaluate field Id in type *formatter.ContainerContext"
    );
}

#[test]
fn a_known_struct_prints_as_go_prints_a_struct() {
    let v = Val::parse_json(
        r#"{"State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,
        "OOMKilled":false,"Dead":false,"Pid":1234,"ExitCode":0,"Error":"",
        "StartedAt":"2024-01-02T03:04:05Z","FinishedAt":"0001-01-01T00:00:00Z"},"Name":"/x"}"#,
    )
    .expect("json");
    let fields: &[&str] = &[
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "Error",
        "StartedAt",
        "FinishedAt",
        "Health",
    ];
    let structs = |p: &str| (p == "State").then_some(fields);
    let env = Env {
        structs: Some(&structs),
        ..Env::default()
    };
    let want = "{running true false false false false 1234 0  2024-01-02T03:04:05Z 0001-01-01T00:00:00Z <nil>}";
    for t in ["{{.State}}", "{{$.State}}"] {
        let got = parse(t).expect("parses").execute(&v, env).expect("runs");
        assert_eq!(got, want, "{t}");
    }
    // Its fields, its JSON and other values print as before.
    let got = parse("{{.State.Pid}} {{json .State.Running}} {{.Name}}")
        .expect("parses")
        .execute(&v, env)
        .expect("runs");
    assert_eq!(got, "1234 true /x");
    let got = parse("{{.State}}")
        .expect("parses")
        .execute(&v, Env::default())
        .expect("runs");
    assert!(got.starts_with("map[Dead:false"), "{got}");
}

#[test]
fn go_or_json_names_alone_as_docker_inspect_tries_them() {
    let v = Val::parse_json(r#"{"Id":"c0ffee","HostConfig":{"CpuShares":2}}"#).expect("json");
    let run = |t: &str, names: Names| {
        parse(t).expect("parses").execute(
            &v,
            Env {
                names,
                missing_key_error: true,
                ..Env::default()
            },
        )
    };
    assert_eq!(
        run("{{.ID}} {{.HostConfig.CPUShares}}", Names::Go).as_deref(),
        Ok("c0ffee 2")
    );
    assert!(run("{{.Id}}", Names::Go).is_err());
    assert!(run("{{.HostConfig.CpuShares}}", Names::Go).is_err());
    assert_eq!(
        run("{{.Id}} {{.HostConfig.CpuShares}}", Names::Json).as_deref(),
        Ok("c0ffee 2")
    );
    assert_eq!(
        run("{{.ID}}", Names::Json).expect_err("no such key"),
        "template: :1:2: executing \"\" at <.ID>: map has no entry for key \"ID\""
    );
    assert_eq!(
        run("{{.HostConfig.CPUShares}}", Names::Json).as_deref(),
        Ok("<no value>")
    );
}
