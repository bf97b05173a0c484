"""Environments: a spec becomes a plan of cloud resources; apply and delete keep a journal."""
