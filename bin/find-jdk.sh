# Sourced by ./weft, ./build and .ci/run: points JAVA_HOME at a JDK >= 25.
# Order: $JAVA_HOME if it is new enough, then the newest suitable JDK under /usr/lib/jvm.
weft_java_major() { # prints the feature version of the JDK at $1
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  echo "${v%%.*}"
}
weft_find_jdk() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ "$(weft_java_major "$JAVA_HOME")" -ge 25 ] 2>/dev/null; then
    return 0
  fi
  local best="" best_v=0 d v
  for d in /usr/lib/jvm/*; do
    [ -x "$d/bin/javac" ] || continue
    v=$(weft_java_major "$d")
    if [ -n "$v" ] && [ "$v" -ge 25 ] 2>/dev/null && [ "$v" -gt "$best_v" ]; then best=$d; best_v=$v; fi
  done
  if [ -z "$best" ]; then
    echo "weft: no JDK >= 25 found (looked at \$JAVA_HOME and /usr/lib/jvm/*)." >&2
    echo "weft: install one (for example Temurin 25) or set JAVA_HOME to it." >&2
    return 1
  fi
  export JAVA_HOME=$best
}
weft_find_jdk || exit 1
export PATH="$JAVA_HOME/bin:$PATH"
