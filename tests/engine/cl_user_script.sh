#!/usr/bin/env bash
# A CodaLab user's own experiment script, written for `cl` (CodaLab 1.7.5) and run unchanged by the
# tests with `cl` = codalite (tests/engine/test_cl_user_script.py puts a `cl` on PATH that runs it).
set -euo pipefail

cl new sorting                    # a worksheet for this experiment ...
cl work sorting                   # ... that new bundles land on

printf '3\n1\n2\n' > numbers.txt
printf '9\n7\n8\n' > more.txt
mkdir -p code
cat > code/sort.py <<'PY'
import sys
print("\n".join(sorted(sys.stdin.read().split(), key=int)))
PY

cl upload code -n code
cl upload numbers.txt -n numbers -d "three numbers"
cl upload more.txt -n more

# %dep% sugar and explicit key:target dependencies
cl run 'python3 %code%/sort.py < %numbers% > sorted.txt' -n sort --request-memory 1g
cl run code:code input:numbers 'python3 code/sort.py < input > sorted.txt' -n sort-explicit
cl wait sort
cl wait sort-explicit
cl cat sort/sorted.txt
cl cat sort-explicit/sorted.txt

# the same step on other data: mimic replaces `numbers` by `more` in everything downstream
cl mimic numbers sort more -n sort-more   # old input, old output, new input
cl wait sort-more
cl cat sort-more/sorted.txt

# a bundle made of other bundles' files
cl make a:sort/sorted.txt b:sort-more/sorted.txt -n both
cl wait both
cl cat both/a

cl search name=sort% .count
cl search name=sort% state=ready -u
cl info -f name,state sort
cl edit sort -d "numbers, sorted"
cl add text '## Results'
cl print
