# Thin aliases for dev.py (which needs nothing but Python 3.11).
.PHONY: demo test check typecheck
demo:
	python3 dev.py demo
test:
	python3 dev.py test
check:
	python3 dev.py check
typecheck:
	python3 dev.py typecheck
