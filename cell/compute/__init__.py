"""The compute agent: one per host; drives libvirt and reconciles desired against observed domains."""
