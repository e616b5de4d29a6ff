.PHONY: demo test
# The same two commands as scripts/demo.sh and scripts/test.sh.
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
