//! Table-driven tests for the parser and for expansion.

use super::ast::*;
use super::{expand, expand_heredoc, expand_words, parse};

fn s(v: &str) -> String {
    v.to_string()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| s(x)).collect()
}

fn stage(base: &str, name: Option<&str>, line: usize, instructions: Vec<Instruction>) -> Stage {
    Stage {
        base: s(base),
        name: name.map(s),
        platform: None,
        line,
        instructions,
    }
}

fn ins(line: usize, original: &str, kind: Kind) -> Instruction {
    Instruction {
        line,
        kind,
        original: s(original),
    }
}

fn run_shell(cmd: &str) -> Kind {
    Kind::Run {
        command: Command::Shell(s(cmd)),
        heredocs: vec![],
        flags: vec![],
    }
}

fn copy(sources: &[&str], dest: &str) -> Copy {
    Copy {
        sources: strs(sources),
        dest: s(dest),
        ..Copy::default()
    }
}

fn heredoc(name: &str, body: &str, strip_tabs: bool, expand: bool) -> Heredoc {
    Heredoc {
        name: s(name),
        body: s(body),
        strip_tabs,
        expand,
    }
}

fn df(stages: Vec<Stage>) -> Dockerfile {
    Dockerfile {
        global_args: vec![],
        stages,
        escape: '\\',
    }
}

/// Parses a one-stage Dockerfile `FROM x\n<body>` and returns the kinds.
fn kinds(body: &str) -> Vec<Kind> {
    let text = format!("FROM x\n{body}");
    match parse(&text) {
        Ok(d) => d
            .stages
            .into_iter()
            .flat_map(|s| s.instructions)
            .map(|i| i.kind)
            .collect(),
        Err(e) => panic!("{body:?} does not parse: {e}"),
    }
}

#[test]
fn whole_dockerfiles() {
    let cases: Vec<(&str, Dockerfile)> = vec![
        (
            // The lecture's example.
            "FROM httpd:2.4\nCOPY ./public-html/ /usr/local/apache2/htdocs/\n",
            df(vec![stage(
                "httpd:2.4",
                None,
                1,
                vec![ins(
                    2,
                    "COPY ./public-html/ /usr/local/apache2/htdocs/",
                    Kind::Copy(copy(&["./public-html/"], "/usr/local/apache2/htdocs/")),
                )],
            )]),
        ),
        (
            "FROM busybox AS build\n\
             RUN echo hello > /hello\n\
             \n\
             FROM scratch\n\
             COPY --from=build /hello /hello\n\
             CMD [\"/hello\"]\n",
            df(vec![
                stage(
                    "busybox",
                    Some("build"),
                    1,
                    vec![ins(
                        2,
                        "RUN echo hello > /hello",
                        run_shell("echo hello > /hello"),
                    )],
                ),
                stage(
                    "scratch",
                    None,
                    4,
                    vec![
                        ins(
                            5,
                            "COPY --from=build /hello /hello",
                            Kind::Copy(Copy {
                                from: Some(s("build")),
                                ..copy(&["/hello"], "/hello")
                            }),
                        ),
                        ins(
                            6,
                            "CMD [\"/hello\"]",
                            Kind::Cmd(Command::Exec(strs(&["/hello"]))),
                        ),
                    ],
                ),
            ]),
        ),
        (
            // Directives, comments, continuations, global ARG, platform.
            "# syntax=docker/dockerfile:1\n\
             # escape=`\n\
             \n\
             # a comment\n\
             ARG BASE=alpine:3.20 V\n\
             FROM --platform=linux/amd64 ${BASE} As Builder\n\
             RUN echo a `\n\
             \x20 # a comment inside\n\
             \n\
             \x20   b\n\
             WORKDIR C:\\dir\n",
            Dockerfile {
                global_args: vec![
                    Arg {
                        name: s("BASE"),
                        default: Some(s("alpine:3.20")),
                    },
                    Arg {
                        name: s("V"),
                        default: None,
                    },
                ],
                stages: vec![Stage {
                    base: s("${BASE}"),
                    name: Some(s("builder")),
                    platform: Some(s("linux/amd64")),
                    line: 6,
                    instructions: vec![
                        ins(7, "RUN echo a     b", run_shell("echo a     b")),
                        ins(11, "WORKDIR C:\\dir", Kind::Workdir(s("C:\\dir"))),
                    ],
                }],
                escape: '`',
            },
        ),
        (
            // Lowercase keywords, CRLF line endings, a BOM, trailing blanks
            // after the escape.
            "\u{feff}from alpine\r\nrun echo a \\  \r\n  b\r\nenv A=1\r\n",
            df(vec![stage(
                "alpine",
                None,
                1,
                vec![
                    ins(2, "run echo a   b", run_shell("echo a   b")),
                    ins(4, "env A=1", Kind::Env(vec![(s("A"), s("1"))])),
                ],
            )]),
        ),
        (
            // A heredoc: body verbatim (no comment or continuation handling).
            "FROM alpine\n\
             RUN <<EOF\n\
             # not a comment \\\n\
             echo $HOME\n\
             EOF\n\
             USER nobody\n",
            df(vec![stage(
                "alpine",
                None,
                1,
                vec![
                    ins(
                        2,
                        "RUN <<EOF\n# not a comment \\\necho $HOME\nEOF",
                        Kind::Run {
                            command: Command::Shell(s("<<EOF")),
                            heredocs: vec![heredoc(
                                "EOF",
                                "# not a comment \\\necho $HOME\n",
                                false,
                                true,
                            )],
                            flags: vec![],
                        },
                    ),
                    ins(6, "USER nobody", Kind::User(s("nobody"))),
                ],
            )]),
        ),
        (
            // The reference's Windows example: with ` as the escape, a
            // trailing \ is an ordinary character.
            "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\\n",
            Dockerfile {
                global_args: vec![],
                stages: vec![stage(
                    "mcr.microsoft.com/windows/servercore",
                    None,
                    3,
                    vec![
                        ins(
                            4,
                            "COPY testfile.txt c:\\",
                            Kind::Copy(copy(&["testfile.txt"], "c:\\")),
                        ),
                        ins(5, "RUN dir c:\\", run_shell("dir c:\\")),
                    ],
                )],
                escape: '`',
            },
        ),
        (
            // Line numbers after heredocs and continuations; indented
            // instructions; a trailing `#` is part of the command.
            "FROM a\n\
             COPY <<-EOF /etc/x.conf\n\
             \tk=v\n\
             \tEOF\n\
             \x20   RUN a \\\n\
             \x20     b # not a comment\n\
             # comment\n\
             EXPOSE 80\n",
            df(vec![stage(
                "a",
                None,
                1,
                vec![
                    ins(
                        2,
                        "COPY <<-EOF /etc/x.conf\n\tk=v\n\tEOF",
                        Kind::Copy(Copy {
                            heredocs: vec![heredoc("EOF", "k=v\n", true, true)],
                            ..copy(&["EOF"], "/etc/x.conf")
                        }),
                    ),
                    ins(
                        5,
                        "RUN a       b # not a comment",
                        run_shell("a       b # not a comment"),
                    ),
                    ins(8, "EXPOSE 80", Kind::Expose(strs(&["80"]))),
                ],
            )]),
        ),
        (
            // A realistic multi-stage build.
            "# syntax=docker/dockerfile:1\n\
             ARG GO=1.22\n\
             FROM golang:${GO} AS build\n\
             WORKDIR /src\n\
             COPY go.mod go.sum ./\n\
             RUN --mount=type=cache,target=/go/pkg/mod go mod download\n\
             COPY . .\n\
             RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app\n\
             \n\
             FROM scratch AS final\n\
             COPY --from=build /out/app /app\n\
             USER 65534:65534\n\
             ENTRYPOINT [\"/app\"]\n",
            Dockerfile {
                global_args: vec![Arg {
                    name: s("GO"),
                    default: Some(s("1.22")),
                }],
                stages: vec![
                    stage(
                        "golang:${GO}",
                        Some("build"),
                        3,
                        vec![
                            ins(4, "WORKDIR /src", Kind::Workdir(s("/src"))),
                            ins(
                                5,
                                "COPY go.mod go.sum ./",
                                Kind::Copy(copy(&["go.mod", "go.sum"], "./")),
                            ),
                            ins(
                                6,
                                "RUN --mount=type=cache,target=/go/pkg/mod go mod download",
                                Kind::Run {
                                    command: Command::Shell(s("go mod download")),
                                    heredocs: vec![],
                                    flags: strs(&["--mount=type=cache,target=/go/pkg/mod"]),
                                },
                            ),
                            ins(7, "COPY . .", Kind::Copy(copy(&["."], "."))),
                            ins(
                                8,
                                "RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app",
                                run_shell("CGO_ENABLED=0 go build -o /out/app ./cmd/app"),
                            ),
                        ],
                    ),
                    stage(
                        "scratch",
                        Some("final"),
                        10,
                        vec![
                            ins(
                                11,
                                "COPY --from=build /out/app /app",
                                Kind::Copy(Copy {
                                    from: Some(s("build")),
                                    ..copy(&["/out/app"], "/app")
                                }),
                            ),
                            ins(12, "USER 65534:65534", Kind::User(s("65534:65534"))),
                            ins(
                                13,
                                "ENTRYPOINT [\"/app\"]",
                                Kind::Entrypoint(Command::Exec(strs(&["/app"]))),
                            ),
                        ],
                    ),
                ],
                escape: '\\',
            },
        ),
    ];
    for (text, want) in cases {
        match parse(text) {
            Ok(got) => assert_eq!(got, want, "{text:?}"),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }
}

#[test]
fn instructions() {
    let cases: Vec<(&str, Vec<Kind>)> = vec![
        // RUN, CMD, ENTRYPOINT: shell and exec form.
        ("RUN echo hi", vec![run_shell("echo hi")]),
        (
            "RUN [\"echo\", \"a b\"]",
            vec![Kind::Run {
                command: Command::Exec(strs(&["echo", "a b"])),
                heredocs: vec![],
                flags: vec![],
            }],
        ),
        // Not JSON: shell form, as docker.
        ("RUN [ -f /etc/passwd ] && echo yes", vec![run_shell("[ -f /etc/passwd ] && echo yes")]),
        ("RUN [ \"$A\" = b ] || true", vec![run_shell("[ \"$A\" = b ] || true")]),
        ("CMD [\"a\"] extra", vec![Kind::Cmd(Command::Shell(s("[\"a\"] extra")))]),
        ("CMD [1, 2]", vec![Kind::Cmd(Command::Shell(s("[1, 2]")))]),
        ("CMD []", vec![Kind::Cmd(Command::Exec(vec![]))]),
        ("CMD ['a']", vec![Kind::Cmd(Command::Shell(s("['a']")))]),
        (
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            vec![Kind::Entrypoint(Command::Exec(strs(&["/bin/sh", "-c"])))],
        ),
        ("entrypoint exec top -b", vec![Kind::Entrypoint(Command::Shell(s("exec top -b")))]),
        (
            "RUN --mount=type=cache,target=/root/.cache --network=none --security=insecure make",
            vec![Kind::Run {
                command: Command::Shell(s("make")),
                heredocs: vec![],
                flags: strs(&[
                    "--mount=type=cache,target=/root/.cache",
                    "--network=none",
                    "--security=insecure",
                ]),
            }],
        ),
        (
            "RUN --mount=type=bind,target=/a --mount=type=tmpfs,target=/b true",
            vec![Kind::Run {
                command: Command::Shell(s("true")),
                heredocs: vec![],
                flags: strs(&["--mount=type=bind,target=/a", "--mount=type=tmpfs,target=/b"]),
            }],
        ),
        // `--` ends the flags.
        ("CMD -- --help", vec![Kind::Cmd(Command::Shell(s("--help")))]),
        // Heredocs.
        (
            "RUN python3 <<EOF\nprint('hi')\nEOF",
            vec![Kind::Run {
                command: Command::Shell(s("python3 <<EOF")),
                heredocs: vec![heredoc("EOF", "print('hi')\n", false, true)],
                flags: vec![],
            }],
        ),
        (
            "RUN <<-EOT\n\t\techo $A\n\tEOT",
            vec![Kind::Run {
                command: Command::Shell(s("<<-EOT")),
                heredocs: vec![heredoc("EOT", "echo $A\n", true, true)],
                flags: vec![],
            }],
        ),
        (
            "RUN <<\"EOF\" bash\necho $A\nEOF",
            vec![Kind::Run {
                command: Command::Shell(s("<<\"EOF\" bash")),
                heredocs: vec![heredoc("EOF", "echo $A\n", false, false)],
                flags: vec![],
            }],
        ),
        (
            "RUN <<'X' cat > /a && <<Y cat > /b\none\nX\ntwo\nthree\nY",
            vec![Kind::Run {
                command: Command::Shell(s("<<'X' cat > /a && <<Y cat > /b")),
                heredocs: vec![
                    heredoc("X", "one\n", false, false),
                    heredoc("Y", "two\nthree\n", false, true),
                ],
                flags: vec![],
            }],
        ),
        (
            "RUN <<EOF\nEOF",
            vec![Kind::Run {
                command: Command::Shell(s("<<EOF")),
                heredocs: vec![heredoc("EOF", "", false, true)],
                flags: vec![],
            }],
        ),
        // A quoted `<<EOF` is not a heredoc.
        ("RUN echo \"<<EOF\"", vec![run_shell("echo \"<<EOF\"")]),
        ("RUN cat <<<here", vec![run_shell("cat <<<here")]),
        // COPY and ADD.
        (
            "COPY <<EOF /dest\nhello\nEOF",
            vec![Kind::Copy(Copy {
                heredocs: vec![heredoc("EOF", "hello\n", false, true)],
                ..copy(&["EOF"], "/dest")
            })],
        ),
        (
            "COPY <<a <<b /dest/\n1\na\n2\nb",
            vec![Kind::Copy(Copy {
                heredocs: vec![heredoc("a", "1\n", false, true), heredoc("b", "2\n", false, true)],
                ..copy(&["a", "b"], "/dest/")
            })],
        ),
        (
            "COPY [\"a b\", \"c\", \"/x/\"]",
            vec![Kind::Copy(copy(&["a b", "c"], "/x/"))],
        ),
        (
            "COPY --chown=55:mygroup --chmod=0644 --link a* \"b c\" /d/",
            vec![Kind::Copy(Copy {
                chown: Some(s("55:mygroup")),
                chmod: Some(s("0644")),
                link: true,
                ..copy(&["a*", "\"b c\""], "/d/")
            })],
        ),
        ("COPY --link=false a /b", vec![Kind::Copy(copy(&["a"], "/b"))]),
        (
            "ADD --chown=root https://example.com/x.tar.gz /x",
            vec![Kind::Add(Copy {
                chown: Some(s("root")),
                ..copy(&["https://example.com/x.tar.gz"], "/x")
            })],
        ),
        (
            "ADD <<EOF foo.txt /bar/\n\"quotes\"\nEOF",
            vec![Kind::Add(Copy {
                heredocs: vec![heredoc("EOF", "\"quotes\"\n", false, true)],
                ..copy(&["EOF", "foo.txt"], "/bar/")
            })],
        ),
        // Exec form is never a heredoc.
        (
            "RUN [\"<<EOF\"]",
            vec![Kind::Run {
                command: Command::Exec(strs(&["<<EOF"])),
                heredocs: vec![],
                flags: vec![],
            }],
        ),
        // ENV, ARG, LABEL.
        (
            "ENV A=1 B=\"two words\" C='$x' D=a\\ b",
            vec![Kind::Env(vec![
                (s("A"), s("1")),
                (s("B"), s("\"two words\"")),
                (s("C"), s("'$x'")),
                (s("D"), s("a\\ b")),
            ])],
        ),
        ("ENV MY_NAME John Doe", vec![Kind::Env(vec![(s("MY_NAME"), s("John Doe"))])]),
        ("ENV E=", vec![Kind::Env(vec![(s("E"), s(""))])]),
        (
            "ARG a b=2 c=\"x y\"",
            vec![Kind::Arg(vec![
                Arg {
                    name: s("a"),
                    default: None,
                },
                Arg {
                    name: s("b"),
                    default: Some(s("2")),
                },
                Arg {
                    name: s("c"),
                    default: Some(s("\"x y\"")),
                },
            ])],
        ),
        (
            "LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 multi=\"a\\\nb\"",
            vec![Kind::Label(vec![
                (s("\"com.example.vendor\""), s("\"ACME Inc\"")),
                (s("version"), s("1.0")),
                (s("multi"), s("\"ab\"")),
            ])],
        ),
        (
            "LABEL description=\"a = b\"",
            vec![Kind::Label(vec![(s("description"), s("\"a = b\""))])],
        ),
        // Single values.
        ("WORKDIR /path/to dir", vec![Kind::Workdir(s("/path/to dir"))]),
        ("USER app:app", vec![Kind::User(s("app:app"))]),
        ("MAINTAINER Jane <j@example.com>", vec![Kind::Maintainer(s("Jane <j@example.com>"))]),
        ("STOPSIGNAL SIGTERM", vec![Kind::StopSignal(s("SIGTERM"))]),
        ("EXPOSE 80 443/tcp 53/udp $PORT", vec![Kind::Expose(strs(&["80", "443/tcp", "53/udp", "$PORT"]))]),
        ("VOLUME [\"/data\", \"/var/log\"]", vec![Kind::Volume(strs(&["/data", "/var/log"]))]),
        ("VOLUME /data /logs", vec![Kind::Volume(strs(&["/data", "/logs"]))]),
        ("SHELL [\"powershell\", \"-command\"]", vec![Kind::Shell(strs(&["powershell", "-command"]))]),
        // HEALTHCHECK.
        (
            "HEALTHCHECK NONE",
            vec![Kind::Healthcheck(Healthcheck {
                test: None,
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            })],
        ),
        (
            "HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1",
            vec![Kind::Healthcheck(Healthcheck {
                test: Some(Command::Shell(s("curl -f http://localhost/ || exit 1"))),
                interval: Some(s("5m")),
                timeout: Some(s("3s")),
                start_period: Some(s("1m30s")),
                start_interval: Some(s("500ms")),
                retries: Some(s("3")),
            })],
        ),
        (
            "healthcheck cmd [\"/probe\"]",
            vec![Kind::Healthcheck(Healthcheck {
                test: Some(Command::Exec(strs(&["/probe"]))),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            })],
        ),
        // ONBUILD.
        ("ONBUILD ADD . /app/src", vec![Kind::Onbuild(s("ADD . /app/src"))]),
        ("ONBUILD RUN --mount=type=cache,target=/c make", vec![Kind::Onbuild(s("RUN --mount=type=cache,target=/c make"))]),
    ];
    for (body, want) in cases {
        assert_eq!(kinds(body), want, "{body:?}");
    }
}

/// (Dockerfile, line of the error, words the message must contain)
const MALFORMED: &[(&str, usize, &[&str])] = &[
    ("FROM a\nFOO bar", 2, &["unknown instruction", "FOO"]),
    ("FROM a\n\n  frob x", 3, &["unknown instruction", "frob"]),
    ("FROM a\nRUN [\"a\", \"b\"", 2, &["unterminated JSON array"]),
    ("FROM a\nCMD [\"a\", \"b", 2, &["unterminated JSON array"]),
    ("FROM a\nENTRYPOINT [", 2, &["unterminated JSON array"]),
    (
        "FROM a\nCOPY [\"a\", \"/b\"",
        2,
        &["unterminated JSON array"],
    ),
    ("FROM a\nRUN echo \\\n  [\"x\"\nRUN b", 2, &[]),
    ("RUN echo hi\nFROM a", 1, &["no FROM before RUN"]),
    ("# comment\n\nCOPY a b\nFROM a", 3, &["no FROM before COPY"]),
    ("", 1, &["no FROM"]),
    ("ARG A\nARG B", 2, &["no FROM"]),
    ("FROM", 1, &["FROM needs an image"]),
    ("FROM a b", 1, &["FROM takes"]),
    ("FROM a AS", 1, &["FROM takes"]),
    ("FROM a IS b", 1, &["FROM takes"]),
    ("FROM a AS 1st", 1, &["invalid stage name", "1st"]),
    ("FROM a AS b/c", 1, &["invalid stage name"]),
    (
        "FROM a AS x\nFROM b AS X",
        2,
        &["duplicate stage name", "x"],
    ),
    ("FROM --platform a", 1, &["--platform", "needs a value"]),
    ("FROM --plat=x a", 1, &["unknown flag --plat"]),
    (
        "FROM a\nCOPY onlyone",
        2,
        &["COPY", "source and a destination", "onlyone"],
    ),
    (
        "FROM a\nADD onlyone",
        2,
        &["ADD", "source and a destination"],
    ),
    ("FROM a\nCOPY", 2, &["COPY", "source and a destination"]),
    ("FROM a\nCOPY --from a /b", 2, &["--from", "needs a value"]),
    (
        "FROM a\nCOPY --frm=x a /b",
        2,
        &["unknown flag --frm", "COPY"],
    ),
    (
        "FROM a\nCOPY --parents a /b",
        2,
        &["--parents", "not supported"],
    ),
    (
        "FROM a\nADD --from=x a /b",
        2,
        &["unknown flag --from", "ADD"],
    ),
    ("FROM a\nCOPY --link=yes a /b", 2, &["--link", "true/false"]),
    (
        "FROM a\nCOPY --chown=a --chown=b a /b",
        2,
        &["--chown", "more than once"],
    ),
    ("FROM a\nRUN --network=none", 2, &["RUN needs a command"]),
    ("FROM a\nRUN", 2, &["RUN needs a command"]),
    (
        "FROM a\nRUN --mnt=x true",
        2,
        &["unknown flag --mnt", "RUN"],
    ),
    ("FROM a\nCMD --help", 2, &["unknown flag --help", "CMD"]),
    ("FROM a\nCMD", 2, &["CMD needs a command"]),
    ("FROM a\nWORKDIR", 2, &["WORKDIR needs"]),
    ("FROM a\nWORKDIR   \\\n", 2, &["WORKDIR needs"]),
    ("FROM a\nUSER", 2, &["USER needs"]),
    ("FROM a\nENV", 2, &["ENV needs"]),
    ("FROM a\nENV A", 2, &["ENV A has no value"]),
    ("FROM a\nENV A=1 B", 2, &["\"B\"", "name=value"]),
    ("FROM a\nENV =1", 2, &["empty name"]),
    ("FROM a\nLABEL", 2, &["LABEL needs"]),
    ("FROM a\nARG", 2, &["ARG needs a name"]),
    ("FROM a\nARG =x", 2, &["ARG", "empty name"]),
    ("FROM a\nEXPOSE", 2, &["EXPOSE needs"]),
    ("FROM a\nVOLUME", 2, &["VOLUME needs"]),
    ("FROM a\nVOLUME [\"\"]", 2, &["VOLUME", "empty"]),
    (
        "FROM a\nSHELL /bin/sh -c",
        2,
        &["SHELL must be a JSON array"],
    ),
    ("FROM a\nSHELL []", 2, &["SHELL needs at least one"]),
    ("FROM a\nSTOPSIGNAL", 2, &["STOPSIGNAL needs"]),
    ("FROM a\nSTOPSIGNAL A B", 2, &["exactly one"]),
    (
        "FROM a\nHEALTHCHECK --interval=5x CMD true",
        2,
        &["--interval", "duration", "5x"],
    ),
    (
        "FROM a\nHEALTHCHECK --retries=-1 CMD true",
        2,
        &["--retries"],
    ),
    (
        "FROM a\nHEALTHCHECK --bogus=1 CMD true",
        2,
        &["unknown flag --bogus", "HEALTHCHECK"],
    ),
    (
        "FROM a\nHEALTHCHECK --timeout CMD true",
        2,
        &["--timeout", "needs a value"],
    ),
    (
        "FROM a\nHEALTHCHECK --interval=1s NONE",
        2,
        &["NONE takes no options"],
    ),
    (
        "FROM a\nHEALTHCHECK NONE x",
        2,
        &["NONE takes no arguments"],
    ),
    (
        "FROM a\nHEALTHCHECK curl x",
        2,
        &["CMD <command> or NONE", "curl"],
    ),
    ("FROM a\nHEALTHCHECK", 2, &["CMD <command> or NONE"]),
    (
        "FROM a\nHEALTHCHECK CMD",
        2,
        &["HEALTHCHECK CMD needs a command"],
    ),
    (
        "FROM a\nRUN <<EOF\necho hi\n",
        2,
        &["unterminated heredoc", "EOF"],
    ),
    (
        "FROM a\nRUN <<EOF\necho hi\n  EOF\n",
        2,
        &["unterminated heredoc"],
    ),
    (
        "FROM a\nRUN true\nCOPY <<A <<B /x\na\nA\nb\n",
        3,
        &["unterminated heredoc", "<<B"],
    ),
    (
        "FROM a\nONBUILD FROM b",
        2,
        &["FROM is not allowed as an ONBUILD trigger"],
    ),
    ("FROM a\nONBUILD ONBUILD RUN x", 2, &["ONBUILD ONBUILD"]),
    (
        "FROM a\nONBUILD MAINTAINER me",
        2,
        &["MAINTAINER is not allowed"],
    ),
    ("FROM a\nONBUILD", 2, &["ONBUILD needs"]),
    ("FROM a\nONBUILD FOO x", 2, &["unknown instruction", "FOO"]),
    ("FROM a\nONBUILD COPY x", 2, &["COPY needs"]),
    (
        "# escape=x\nFROM a",
        1,
        &["invalid escape directive", "\"x\""],
    ),
    ("# escape=\\\\\nFROM a", 1, &["invalid escape directive"]),
    (
        "# escape=`\n# escape=\\\nFROM a",
        2,
        &["escape", "more than once"],
    ),
    ("FROM a\nMAINTAINER", 2, &["MAINTAINER needs"]),
    ("FROM a\nRUN <<EOF", 2, &["unterminated heredoc"]),
    ("FROM a\nCOPY --from= a /b", 2, &["--from", "needs a value"]),
    (
        "FROM a\nHEALTHCHECK --start-period=1x CMD true",
        2,
        &["--start-period"],
    ),
    (
        "FROM a\nHEALTHCHECK --timeout=1.2.3s CMD true",
        2,
        &["--timeout"],
    ),
    (
        "FROM a\nHEALTHCHECK --interval=s CMD true",
        2,
        &["--interval"],
    ),
    ("ARG --x A\nFROM a", 1, &["unknown flag --x", "ARG"]),
    ("FROM a\nENV --x=1 A=1", 2, &["unknown flag --x", "ENV"]),
    (
        "FROM a\nRUN true\n\n# c\nbogus",
        5,
        &["unknown instruction", "bogus"],
    ),
    (
        "FROM a\nRUN a \\\n  b\nNOPE",
        4,
        &["unknown instruction", "NOPE"],
    ),
    (
        "FROM a\nUSER <<INVALID\nINVALID",
        3,
        &["unknown instruction", "INVALID"],
    ),
    (
        "# syntax=a\n# syntax=b\nFROM a",
        2,
        &["syntax", "more than once"],
    ),
];

#[test]
fn malformed() {
    for (text, line, words) in MALFORMED {
        let e = match parse(text) {
            Ok(d) if words.is_empty() => {
                // Documented non-errors kept in the table for contrast.
                let _ = d;
                continue;
            }
            Ok(d) => panic!("{text:?} parsed: {d:?}"),
            Err(e) => e,
        };
        assert_eq!(e.line, *line, "{text:?}: {e}");
        for w in *words {
            assert!(e.message.contains(w), "{text:?}: {e} lacks {w:?}");
        }
    }
}

#[test]
fn directives() {
    // Directives stop at the first other line: a later `# escape=` is a comment.
    let d = parse("FROM a\n# escape=`\nRUN a \\\n b").expect("parses");
    assert_eq!(d.escape, '\\');
    let d = parse("# unknown=1\n# escape=`\nFROM a").expect("parses");
    assert_eq!(d.escape, '\\');
    let d = parse("\n# escape=`\nFROM a").expect("parses");
    assert_eq!(d.escape, '\\');
    // Case and blanks do not matter.
    let d = parse("#  ESCAPE = ` \n# check=skip=all\nFROM a\nRUN a `\n b").expect("parses");
    assert_eq!(d.escape, '`');
    assert_eq!(d.stages[0].instructions[0].kind, run_shell("a  b"));
    // With ` as escape, a trailing \ is literal.
    let d = parse("# escape=`\nFROM a\nRUN dir c:\\\nUSER x").expect("parses");
    assert_eq!(d.stages[0].instructions.len(), 2);
}

#[test]
fn onbuild_and_global_args_in_order() {
    let d = parse("ARG A\nFROM a\nARG B\nFROM b AS two\nONBUILD RUN x").expect("parses");
    assert_eq!(d.global_args.len(), 1);
    assert_eq!(
        d.stages[0].instructions[0].kind,
        Kind::Arg(vec![Arg {
            name: s("B"),
            default: None
        }])
    );
    assert_eq!(d.stages[1].name.as_deref(), Some("two"));
    assert_eq!(d.stages[1].line, 4);
}

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some(s("a")),
        "SP" => Some(s("x  y")),
        "EMPTY" => Some(s("")),
        "_u9" => Some(s("u")),
        _ => None,
    }
}

#[test]
fn expansion() {
    let cases: &[(&str, char, &str)] = &[
        ("$A", '\\', "a"),
        ("${A}", '\\', "a"),
        ("x${A}y", '\\', "xay"),
        ("$Ab", '\\', ""),
        ("$A-b", '\\', "a-b"),
        ("$_u9/", '\\', "u/"),
        ("$UNSET", '\\', ""),
        ("${UNSET}", '\\', ""),
        ("${A:-d}", '\\', "a"),
        ("${UNSET:-d}", '\\', "d"),
        ("${EMPTY:-d}", '\\', "d"),
        ("${EMPTY-d}", '\\', ""),
        ("${UNSET-d}", '\\', "d"),
        ("${A:+alt}", '\\', "alt"),
        ("${EMPTY:+alt}", '\\', ""),
        ("${EMPTY+alt}", '\\', "alt"),
        ("${UNSET+alt}", '\\', ""),
        ("${UNSET:+alt}", '\\', ""),
        ("${UNSET:-$A}", '\\', "a"),
        ("${UNSET:-${A:+x$A}}", '\\', "xa"),
        ("${UNSET:-a b}", '\\', "a b"),
        ("${UNSET:-\"}\"}", '\\', "}"),
        ("${UNSET:-a\\}b}", '\\', "a}b"),
        ("\\$A", '\\', "$A"),
        ("`$A", '`', "$A"),
        ("\\$A", '`', "\\a"),
        ("'$A'", '\\', "$A"),
        ("\"$A\"", '\\', "a"),
        ("\"'$A'\"", '\\', "'a'"),
        ("'\"$A\"'", '\\', "\"$A\""),
        ("\"a\\\"b\"", '\\', "a\"b"),
        ("\"C:\\dir\"", '\\', "C:\\dir"),
        ("\"\\$A\"", '\\', "$A"),
        ("a\\ b", '\\', "a b"),
        ("$", '\\', "$"),
        ("a$", '\\', "a$"),
        ("$-", '\\', "$-"),
        ("$1", '\\', ""),
        ("100%", '\\', "100%"),
        ("$SP", '\\', "x  y"),
        ("", '\\', ""),
        ("trailing\\", '\\', "trailing"),
        ("é$A", '\\', "éa"),
    ];
    for (word, escape, want) in cases {
        assert_eq!(
            expand(word, *escape, &vars).as_deref(),
            Ok(*want),
            "{word:?}"
        );
    }
}

#[test]
fn bad_substitutions() {
    for (word, what) in [
        ("${}", "bad substitution"),
        ("${A", "bad substitution"),
        ("${A:-x", "bad substitution"),
        ("${A:?x}", "bad substitution"),
        ("${A:=x}", "bad substitution"),
        ("${A?x}", "bad substitution"),
        ("${A%x}", "unsupported operator '%'"),
        ("${A##*/}", "unsupported operator '#'"),
        ("${A/x/y}", "unsupported operator '/'"),
        ("${A:?x}", "unsupported operator ':?'"),
        ("${A x}", "unexpected ' '"),
        ("${1abc}", "bad substitution"),
        ("${-}", "bad substitution"),
        ("${", "bad substitution"),
        ("'abc", "unterminated single-quoted"),
        ("\"abc", "unterminated double-quoted"),
        ("${A:-'x}", "unterminated single-quoted"),
    ] {
        match expand(word, '\\', &vars) {
            Ok(v) => panic!("{word:?} expanded to {v:?}"),
            Err(e) => {
                assert!(e.contains(what), "{word:?}: {e}");
                assert!(e.contains(word), "{word:?}: {e} does not name the word");
            }
        }
    }
    // The same errors reach expand_words.
    assert!(expand_words("a ${B", '\\', &vars).is_err());
}

#[test]
fn substitution_errors_come_from_expand() {
    // The parser keeps words as written, so a bad `${` in FROM or ENV is
    // reported when the executor expands it.
    let d = parse("ARG V=1\nFROM alpine:${V\nENV A=${B:?no}").expect("parses");
    let base = &d.stages[0].base;
    let e = expand(base, d.escape, &vars).expect_err("bad FROM");
    assert!(e.contains("bad substitution") && e.contains("${V"), "{e}");
    let Kind::Env(pairs) = &d.stages[0].instructions[0].kind else {
        panic!("not ENV: {d:?}");
    };
    let e = expand(&pairs[0].1, d.escape, &vars).expect_err("bad ENV");
    assert!(e.contains("bad substitution") && e.contains(":?"), "{e}");
}

#[test]
fn heredoc_bodies() {
    let cases: &[(&str, &str)] = &[
        ("echo $A\n", "echo a\n"),
        ("'$A' \"$A\"\n", "'a' \"a\"\n"),
        ("\\$A \\\\ \\n ${UNSET:-it's}\n", "$A \\ \\n it's\n"),
        ("don't $", "don't $"),
        ("C:\\dir", "C:\\dir"),
    ];
    for (body, want) in cases {
        assert_eq!(
            expand_heredoc(body, '\\', &vars).as_deref(),
            Ok(*want),
            "{body:?}"
        );
    }
    assert!(expand_heredoc("${A", '\\', &vars).is_err());
}

#[test]
fn word_splitting() {
    let cases: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("  a\tb\n", &["a", "b"]),
        ("\"a b\" 'c d'", &["a b", "c d"]),
        ("a\\ b c", &["a b", "c"]),
        ("$SP z", &["x", "y", "z"]),
        ("\"$SP\" z", &["x  y", "z"]),
        ("pre$SP", &["prex", "y"]),
        ("${UNSET:-p q}", &["p", "q"]),
        ("\"\" a", &["", "a"]),
        ("$UNSET a", &["a"]),
        ("", &[]),
        ("80/tcp $A", &["80/tcp", "a"]),
    ];
    for (text, want) in cases {
        let want: Vec<String> = want.iter().map(|w| s(w)).collect();
        assert_eq!(expand_words(text, '\\', &vars), Ok(want), "{text:?}");
    }
}

/// Tiny deterministic generator (xorshift) so the fuzz-ish test needs no
/// dependency and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SAMPLE: &str = "# syntax=docker/dockerfile:1\n\
ARG BASE=alpine\n\
FROM --platform=$BUILDPLATFORM ${BASE} AS build\n\
RUN --mount=type=cache,target=/c <<EOF bash\n\
set -e\n\
echo \"${A:-b}\" \\\n\
EOF\n\
COPY --from=build --chown=1:1 [\"a b\", \"/x/\"]\n\
ENV A=1 B=\"x y\" \\\n\
  # comment\n\
  C='$z'\n\
HEALTHCHECK --interval=1s CMD [\"/bin/true\"]\n\
ONBUILD RUN echo é\n\
LABEL k=\"v\" k2=v2\n\
VOLUME [\"/data\"]\n\
FROM scratch\n\
COPY --from=build /x /x\n";

#[test]
fn no_panics_on_garbage() {
    // Every prefix and suffix of the sample (at char boundaries).
    for (i, _) in SAMPLE.char_indices() {
        let _ = parse(&SAMPLE[..i]);
        let _ = parse(&SAMPLE[i..]);
    }
    // Random byte soup biased towards the characters the parser cares about.
    let alphabet: Vec<char> = "FROM RUN COPY ENV <<EOF \\`\"'[]{}$:-+=#\n\t é,"
        .chars()
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = (rng.next() % 80) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
            .collect();
        let _ = parse(&text);
        let _ = parse(&format!("FROM a\n{text}"));
        let _ = expand(&text, '\\', &vars);
        let _ = expand_words(&text, '`', &vars);
        let _ = crate::dockerignore::Ignore::parse(&text).map(|i| {
            i.excluded(&text);
            i.may_include_under(&text)
        });
    }
    // Deep nesting must be an error, not a stack overflow.
    let deep = "${A:-".repeat(100_000);
    assert!(expand(&deep, '\\', &vars).is_err());
    assert!(expand(&format!("{deep}x{}", "}".repeat(100_000)), '\\', &vars).is_err());
    let _ = parse(&format!("FROM a\nCMD {}", "[".repeat(100_000)));
    let _ = parse(&format!("FROM a\nRUN {}", "<<A ".repeat(10_000)));
    let _ = crate::dockerignore::Ignore::parse(&"*".repeat(10_000))
        .map(|i| i.excluded(&"a".repeat(10_000)));
    // Random mutations of the sample.
    let bytes = SAMPLE.as_bytes();
    for _ in 0..2000 {
        let mut b = bytes.to_vec();
        for _ in 0..(rng.next() % 5 + 1) {
            let at = (rng.next() % b.len() as u64) as usize;
            b[at] = (rng.next() % 128) as u8;
        }
        let text = String::from_utf8_lossy(&b);
        let _ = parse(&text);
    }
}
