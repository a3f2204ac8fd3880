//! .dockerignore semantics. The first test replays a context that Debian's Docker engine
//! (BuildKit) built with `COPY . /`: the expected file list is what that image contained.

use drydock_dockerfile::Dockerignore;

const IGNORE: &str = r#"# comment
*.md
!README.md
docs
!docs/keep.md
temp?
**/*.log
!logs/sub/*.log
/build/
!build/keep
.git
node_modules/*
!node_modules/keep.js
[bc].txt
dir/**/z
**/*.tmp
!keep.tmp
src/*_test.go
vendor
"#;

const FILES: &str = ".dockerignore,.git/config,Dockerfile,README.md,a.md,b[1].txt,build/keep/k.txt,build/out.bin,c.txt,d.txt,deep/a/b/c/file.tmp,dir/a/b/c/z,dir/a/z,dir/az,docs/keep.md,docs/sub/y.md,docs/x.md,keep.tmp,logs/a.log,logs/sub/b.log,node_modules/keep.js,node_modules/p/i.js,src/main.go,src/main_test.go,src/vendor/lib.go,temp1,temp22,vendor/a/b.go,x.log,";

/// Files BuildKit copied into the image from that context.
const BUILDKIT_KEPT: &[&str] = &[
    ".dockerignore",
    "Dockerfile",
    "README.md",
    "b[1].txt",
    "build/keep/k.txt",
    "d.txt",
    "dir/az",
    "docs/keep.md",
    "keep.tmp",
    "logs/sub/b.log",
    "node_modules/keep.js",
    "src/main.go",
    "src/vendor/lib.go",
    "temp22",
];

#[test]
fn matches_what_buildkit_copied() {
    let ig = Dockerignore::parse(IGNORE);
    let kept: Vec<&str> = FILES
        .split(',')
        .filter(|f| !f.is_empty() && !ig.is_excluded(f))
        .collect();
    assert_eq!(kept, BUILDKIT_KEPT);
}

#[test]
fn walkers_may_prune_only_unreachable_directories() {
    let ig = Dockerignore::parse(IGNORE);
    // Excluded, but exceptions reach inside: must be walked.
    for dir in ["docs", "build", "node_modules", "logs"] {
        assert!(ig.could_reinclude_under(dir), "{dir}");
    }
    // Excluded and nothing below can come back.
    assert!(ig.is_excluded(".git") && !ig.could_reinclude_under(".git"));
    assert!(ig.is_excluded("vendor") && !ig.could_reinclude_under("vendor"));
}

fn kept(patterns: &str, path: &str) -> bool {
    !Dockerignore::parse(patterns).is_excluded(path)
}

#[test]
fn table() {
    let rows: &[(&str, &str, bool)] = &[
        // (patterns, path, kept)
        ("", "a", true),
        ("a", "a", false),
        ("a", "a/b/c", false),
        ("a", "b/a", true),
        ("/a", "a", false),
        ("./a", "a", false),
        ("a/", "a/x", false),
        ("a/../b", "b", false),
        ("*", "a", false),
        ("*", "a/b", false),
        ("*/b", "a/b", false),
        ("*/b", "a/c/b", true),
        ("**/b", "a/c/b", false),
        ("**/b", "b", false),
        ("a/**", "a/x/y", false),
        ("a/**", "a", true),
        ("a/**/b", "a/b", false),
        ("a/**/b", "a/x/y/b", false),
        ("a?c", "abc", false),
        ("a?c", "a/c", true),
        ("[a-c]x", "bx", false),
        ("[a-c]x", "dx", true),
        ("[^a-c]x", "dx", false),
        (r"\*", "*", false),
        (r"\*", "a", true),
        ("*.go\n!main.go", "main.go", true),
        ("!main.go\n*.go", "main.go", false),
        ("a\n!a/b", "a/b/c", true),
        ("a\n!a/b", "a/c", false),
        ("  spaced  ", "spaced", false),
        ("# comment\n\n", "# comment", true),
        (" # not a comment", "# not a comment", false),
        ("*\n!*.txt", "dir/x.txt", false),
        ("*\n!**/*.txt", "dir/x.txt", true),
    ];
    for (p, path, want) in rows {
        assert_eq!(kept(p, path), *want, "patterns {p:?} path {path:?}");
    }
}
